//! `kind: model` fixtures: the model rebuilt from the manifest's config, the official
//! weights loaded, each named output compared.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use ember_core::SeededVarMap;
use ember_models::registry;
use serde_json::Value;

use crate::compare::{load_file, Tolerance};
use crate::Outcome;

pub fn parity(dir: &Path, manifest: &Value, family: &str, dev: &Device) -> Result<Outcome, String> {
    if !registry::FAMILIES.contains(&family) {
        return Ok(Outcome::Pending);
    }
    let file = |key: &str| {
        manifest[key]
            .as_str()
            .ok_or(format!("manifest has no `{key}` file"))
    };
    let weights = load_file(dir, file("weights")?)?;
    let io = load_file(dir, file("io")?)?;
    let config = registry::known_fields(family, &manifest["config"]).map_err(|e| e.to_string())?;
    let (config, notes) = registry::fit_to_weights(family, &config, &weights);
    for note in notes {
        println!("  note: manifest config {note}");
    }
    let map = SeededVarMap::new(0);
    let model = registry::build(family, &config, map.var_builder(DType::F32, dev))
        .map_err(|e| e.to_string())?;
    ember_models::load_into(map.vars(), &weights, "official weights").map_err(|e| e.to_string())?;
    let inputs = manifest["inputs"]
        .as_object()
        .ok_or("manifest has no inputs")?;
    let (input_name, _) = inputs.iter().next().ok_or("manifest lists no input")?;
    let x = io
        .get(input_name)
        .ok_or(format!("io file lacks input `{input_name}`"))?;
    let train = !manifest["mode"]
        .as_str()
        .unwrap_or("eval")
        .starts_with("eval");
    let x = x.to_device(dev).map_err(|e| e.to_string())?;
    let ours: HashMap<String, Tensor> = model
        .outputs(&x, train)
        .map_err(|e| e.to_string())?
        .into_iter()
        .collect();
    let tolerance = Tolerance::from_manifest(&manifest["tolerance"]);
    let outputs = manifest["outputs"]
        .as_object()
        .ok_or("manifest has no outputs")?;
    let mut worst = 0f64;
    for name in outputs.keys() {
        let theirs = io
            .get(name)
            .ok_or(format!("io file lacks output `{name}`"))?;
        let mine = ours
            .get(name)
            .ok_or(format!("the model has no output named `{name}`"))?;
        worst = worst.max(tolerance.check(name, mine, theirs)?);
    }
    Ok(Outcome::Ok(worst))
}
