//! DIST sections: one case per entry of `hyperparameters` (beta, gamma, tau, use_sigmoid,
//! loss_weight). The `default` case owns the unprefixed tensors, case `c` those named
//! `c.*`. A case without its own `student` input uses the input whose shape matches its
//! gradient. Each output tensor is recomputed from its name: `loss` (and `loss_f64`),
//! `inter`, `intra`, `grad_student`, `grad_inter`, `grad_intra`.

use std::collections::HashMap;

use candle_core::{Tensor, Var};
use ember_losses::{Dist, Probabilities};
use serde_json::Value;

use crate::compare::{self, Tolerance};
use crate::Outcome;

const DEFAULT_CASE: &str = "default";

pub fn cases(
    spec: &Value,
    io: &HashMap<String, Tensor>,
    tolerance: &Tolerance,
) -> Vec<(String, Result<Outcome, String>)> {
    let cases = match compare::cases(spec, Some(DEFAULT_CASE)) {
        Ok(c) => c,
        Err(e) => return vec![(String::new(), Err(e))],
    };
    cases
        .into_iter()
        .map(|c| {
            let outcome = case_parity(c.hp, &c.prefix, &c.outputs, io, tolerance);
            (c.name.to_string(), outcome)
        })
        .collect()
}

fn config(hp: &Value) -> Dist {
    Dist {
        beta: hp["beta"].as_f64().unwrap_or(1.0),
        gamma: hp["gamma"].as_f64().unwrap_or(1.0),
        // A non-numeric tau ("none ...") or none at all: the untempered dense versions.
        tau: hp["tau"].as_f64(),
        probabilities: if hp["use_sigmoid"].as_bool().unwrap_or(false) {
            Probabilities::Sigmoid
        } else {
            Probabilities::Softmax
        },
    }
}

/// The `student` / `teacher` pair for a case: its own, or else the pair whose student has
/// the shape of the case's gradient.
fn inputs<'a>(
    prefix: &str,
    io: &'a HashMap<String, Tensor>,
) -> Result<(&'a Tensor, &'a Tensor), String> {
    let pair = |p: &str| {
        Some((
            io.get(&format!("{p}student"))?,
            io.get(&format!("{p}teacher"))?,
        ))
    };
    if let Some(found) = pair(prefix) {
        return Ok(found);
    }
    let grad = io.get(&format!("{prefix}grad_student")).ok_or(format!(
        "no `{prefix}student` input and no `{prefix}grad_student` to match one by shape"
    ))?;
    let mut candidates: Vec<&String> = io
        .keys()
        .filter(|k| *k == "student" || k.ends_with(".student"))
        .collect();
    candidates.sort();
    candidates
        .into_iter()
        .filter_map(|k| pair(k.strip_suffix("student").unwrap_or("")))
        .find(|(s, _)| s.dims() == grad.dims())
        .ok_or(format!("no student input of shape {:?}", grad.dims()))
}

fn case_parity(
    hp: &Value,
    prefix: &str,
    outputs: &[&str],
    io: &HashMap<String, Tensor>,
    tolerance: &Tolerance,
) -> Result<Outcome, String> {
    let (student, teacher) = inputs(prefix, io)?;
    let dist = config(hp);
    let weight = hp["loss_weight"].as_f64().unwrap_or(1.0);
    let s = Var::from_tensor(student).map_err(|e| e.to_string())?;
    let terms = dist
        .terms(s.as_tensor(), teacher)
        .map_err(|e| e.to_string())?;
    let grad_of = |t: &Tensor| -> Result<Tensor, String> {
        let grads = t.backward().map_err(|e| e.to_string())?;
        grads
            .get(&s)
            .cloned()
            .ok_or("no gradient reached the student".into())
    };
    let loss = (&terms.loss * weight).map_err(|e| e.to_string())?;
    let mut worst = 0f64;
    for &name in outputs {
        if name == "student" || name == "teacher" {
            continue;
        }
        let ours = match name {
            "loss" | "loss_f64" => loss.clone(),
            "inter" => terms.inter.clone(),
            "intra" => terms.intra.clone(),
            "grad_student" => grad_of(&loss)?,
            "grad_inter" => grad_of(&terms.inter)?,
            "grad_intra" => grad_of(&terms.intra)?,
            other => return Err(format!("unknown DIST output `{prefix}{other}`")),
        };
        let full = format!("{prefix}{name}");
        let theirs = io.get(&full).ok_or(format!("io file lacks `{full}`"))?;
        worst = worst.max(tolerance.check(&full, &ours, theirs)?);
    }
    Ok(Outcome::Ok(worst))
}
