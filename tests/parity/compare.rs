//! Loading fixture files and comparing our tensors with the official ones.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use ember_core::SeededVarMap;
use serde_json::Value;

/// Fixture tensors by name.
pub type Tensors = HashMap<String, Tensor>;

/// `|ours - theirs| <= abs + rel * |theirs| + rel_to_max_abs * max |theirs|` per element,
/// with the manifest's fields (absent ones are 0; `abs` defaults to 1e-4).
pub struct Tolerance {
    abs: f64,
    rel: f64,
    rel_to_max_abs: f64,
}

impl Tolerance {
    pub fn from_manifest(tol: &Value) -> Self {
        Self {
            abs: tol["abs"].as_f64().unwrap_or(1e-4),
            rel: tol["rel"].as_f64().unwrap_or(0.0),
            rel_to_max_abs: tol["rel_to_max_abs"].as_f64().unwrap_or(0.0),
        }
    }

    /// The largest |ours - theirs|; an error names the tensor when any element is out of
    /// tolerance or the shapes differ.
    pub fn check(&self, name: &str, ours: &Tensor, theirs: &Tensor) -> Result<f64, String> {
        if ours.dims() != theirs.dims() {
            return Err(format!(
                "{name}: shape {:?}, official {:?}",
                ours.dims(),
                theirs.dims()
            ));
        }
        let (a, b) = (values(ours)?, values(theirs)?);
        let max_ref = b.iter().fold(0f64, |m, y| m.max(y.abs()));
        let mut worst = 0f64;
        let mut within = true;
        for (x, y) in a.iter().zip(&b) {
            let d = (x - y).abs();
            worst = worst.max(d);
            within &= d <= self.abs + self.rel * y.abs() + self.rel_to_max_abs * max_ref;
        }
        if !within {
            return Err(format!(
                "{name}: max abs diff {worst:.3e} exceeds abs {:e} + rel {:e} + rel_to_max_abs {:e}",
                self.abs, self.rel, self.rel_to_max_abs
            ));
        }
        Ok(worst)
    }
}

fn values(t: &Tensor) -> Result<Vec<f64>, String> {
    t.to_dtype(DType::F64)
        .and_then(|t| t.flatten_all()?.to_vec1())
        .map_err(|e| e.to_string())
}

/// The tensors of fixture file `file` in `dir`, on the CPU.
pub fn load_file(dir: &Path, file: &str) -> Result<HashMap<String, Tensor>, String> {
    candle_core::safetensors::load(dir.join(file), &Device::Cpu).map_err(|e| format!("{file}: {e}"))
}

/// A candle error as the parity line's message.
pub fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// The fixture tensor `name`.
pub fn get<'a>(t: &'a Tensors, name: &str) -> Result<&'a Tensor, String> {
    t.get(name).ok_or(format!("fixture lacks `{name}`"))
}

/// The tensors under `prefix.`, with the prefix removed.
pub fn under(weights: &Tensors, prefix: &str) -> Tensors {
    let prefix = format!("{prefix}.");
    weights
        .iter()
        .filter_map(|(k, t)| {
            k.strip_prefix(&prefix)
                .map(|rest| (rest.to_string(), t.clone()))
        })
        .collect()
}

/// Worst difference over the named comparisons; the first failure stops.
pub struct Checks<'a> {
    pub tol: &'a Tolerance,
    pub worst: f64,
}

impl Checks<'_> {
    pub fn check(&mut self, name: &str, ours: &Tensor, theirs: &Tensor) -> Result<(), String> {
        let ours = ours.to_device(&Device::Cpu).map_err(err)?;
        self.worst = self.worst.max(self.tol.check(name, &ours, theirs)?);
        Ok(())
    }

    /// Every variable of `vars` against `expected` (same names), and no name missing.
    pub fn check_vars(&mut self, vars: &SeededVarMap, expected: &Tensors) -> Result<(), String> {
        let ours: HashMap<String, Tensor> = vars
            .named()
            .into_iter()
            .map(|(k, v)| (k, v.as_tensor().clone()))
            .collect();
        for (name, theirs) in expected {
            if name.ends_with("num_batches_tracked") {
                continue;
            }
            let mine = ours
                .get(name)
                .ok_or(format!("we have no variable `{name}`"))?;
            self.check(name, mine, theirs)?;
        }
        if let Some(extra) = ours.keys().find(|k| !expected.contains_key(*k)) {
            return Err(format!("we have `{extra}`, the official module does not"));
        }
        Ok(())
    }
}

/// One case of a section: its name, hyperparameters, the prefix of its tensors and the names
/// of its tensors without that prefix.
pub struct Case<'a> {
    pub name: &'a str,
    pub hp: &'a Value,
    pub prefix: String,
    pub outputs: Vec<&'a str>,
}

/// A section's cases, one per entry of its `hyperparameters`: case `c` owns the tensors
/// named `c.*`, and `unprefixed` (if given) the tensors without a dot.
pub fn cases<'a>(spec: &'a Value, unprefixed: Option<&str>) -> Result<Vec<Case<'a>>, String> {
    let cases = spec["hyperparameters"]
        .as_object()
        .ok_or("section has no hyperparameters")?;
    let names: Vec<&'a String> = spec["tensors"]
        .as_object()
        .map(|t| t.keys().collect())
        .unwrap_or_default();
    Ok(cases
        .iter()
        .map(|(case, hp)| {
            let prefix = if Some(case.as_str()) == unprefixed {
                String::new()
            } else {
                format!("{case}.")
            };
            let outputs = names
                .iter()
                .filter_map(|n| {
                    if prefix.is_empty() {
                        (!n.contains('.')).then_some(n.as_str())
                    } else {
                        n.strip_prefix(&prefix)
                    }
                })
                .collect();
            Case {
                name: case,
                hp,
                prefix,
                outputs,
            }
        })
        .collect())
}
