//! Parity with the official PyTorch implementations: every fixture manifest under
//! `$EMBER_PARITY_DIR` (default `../shared/parity`) is discovered, its model rebuilt from the
//! manifest alone, the official weights loaded, and each named output compared within the
//! manifest's tolerance. One line per fixture; kinds and families Ember does not have yet
//! print `pending`. Runs without the test harness so the lines always show.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use ember_core::SeededVarMap;
use ember_models::registry;
use serde_json::Value;

enum Outcome {
    Ok(f64),
    Pending,
}

fn manifests(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for p in paths {
        if p.is_dir() {
            manifests(&p, out);
        } else if p.extension().is_some_and(|e| e == "json") {
            out.push(p);
        }
    }
}

fn load(dir: &Path, manifest: &Value, key: &str) -> Result<HashMap<String, Tensor>, String> {
    let file = manifest[key]
        .as_str()
        .ok_or(format!("manifest has no `{key}` file"))?;
    candle_core::safetensors::load(dir.join(file), &Device::Cpu).map_err(|e| format!("{file}: {e}"))
}

/// Largest |ours - theirs|, and whether every element is within `abs + rel * |theirs|`.
fn compare(ours: &Tensor, theirs: &Tensor, abs: f64, rel: f64) -> Result<(f64, bool), String> {
    if ours.dims() != theirs.dims() {
        return Err(format!(
            "shape {:?}, official {:?}",
            ours.dims(),
            theirs.dims()
        ));
    }
    let a: Vec<f64> = ours
        .to_dtype(DType::F64)
        .and_then(|t| t.flatten_all()?.to_vec1())
        .map_err(|e| e.to_string())?;
    let b: Vec<f64> = theirs
        .to_dtype(DType::F64)
        .and_then(|t| t.flatten_all()?.to_vec1())
        .map_err(|e| e.to_string())?;
    let mut worst = 0f64;
    let mut within = true;
    for (x, y) in a.iter().zip(&b) {
        let d = (x - y).abs();
        worst = worst.max(d);
        within &= d <= abs + rel * y.abs();
    }
    Ok((worst, within))
}

fn model_parity(dir: &Path, manifest: &Value, family: &str) -> Result<Outcome, String> {
    if !registry::FAMILIES.contains(&family) {
        return Ok(Outcome::Pending);
    }
    let weights = load(dir, manifest, "weights")?;
    let io = load(dir, manifest, "io")?;
    let config = registry::known_fields(family, &manifest["config"]).map_err(|e| e.to_string())?;
    let (config, notes) = registry::fit_to_weights(family, &config, &weights);
    for note in notes {
        println!("  note: manifest config {note}");
    }
    let map = SeededVarMap::new(0);
    let dev = device();
    let model = registry::build(family, &config, map.var_builder(DType::F32, &dev))
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
    let x = x.to_device(&dev).map_err(|e| e.to_string())?;
    let ours: HashMap<String, Tensor> = model
        .outputs(&x, train)
        .map_err(|e| e.to_string())?
        .into_iter()
        .collect();
    let tol = &manifest["tolerance"];
    let (abs, rel) = (
        tol["abs"].as_f64().unwrap_or(1e-4),
        tol["rel"].as_f64().unwrap_or(0.0),
    );
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
        let (diff, within) = compare(mine, theirs, abs, rel).map_err(|e| format!("{name}: {e}"))?;
        if !within {
            return Err(format!(
                "{name}: max abs diff {diff:.3e} exceeds abs {abs:e} + rel {rel:e}"
            ));
        }
        worst = worst.max(diff);
    }
    Ok(Outcome::Ok(worst))
}

fn run(path: &Path) -> Result<Outcome, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let manifest: Value = serde_json::from_str(&text).map_err(|e| format!("not JSON: {e}"))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let family = manifest["family"].as_str().unwrap_or("");
    match manifest["kind"].as_str() {
        Some("model") => model_parity(dir, &manifest, family),
        _ => Ok(Outcome::Pending),
    }
}

/// The device the models run on: `EMBER_PARITY_DEVICE` (cpu, cuda, cuda:N, metal; default
/// cpu). The fixtures and the comparison stay on the CPU.
fn device() -> Device {
    let choice = std::env::var("EMBER_PARITY_DEVICE").unwrap_or_else(|_| "cpu".into());
    choice
        .parse::<ember_core::DeviceChoice>()
        .and_then(|c| c.open())
        .unwrap_or_else(|e| panic!("EMBER_PARITY_DEVICE={choice}: {e}"))
}

fn main() {
    println!("parity: models on {:?}", device());
    let root = std::env::var_os("EMBER_PARITY_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/parity"));
    if !root.is_dir() {
        println!(
            "parity: no fixtures at {} (set EMBER_PARITY_DIR); skipped",
            root.display()
        );
        return;
    }
    let mut paths = Vec::new();
    manifests(&root, &mut paths);
    let mut failures = 0;
    for path in &paths {
        let rel = path.strip_prefix(&root).unwrap_or(path);
        let family = rel
            .parent()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        let name = format!(
            "{family}/{}",
            path.file_stem().unwrap_or_default().to_string_lossy()
        );
        match run(path) {
            Ok(Outcome::Ok(diff)) => println!("parity {name}: ok (max abs diff {diff:.2e})"),
            Ok(Outcome::Pending) => println!("parity {name}: pending (not implemented yet)"),
            Err(e) => {
                failures += 1;
                println!("parity {name}: FAILED: {e}");
            }
        }
    }
    if failures > 0 {
        eprintln!("{failures} parity fixture(s) failed");
        std::process::exit(1);
    }
}
