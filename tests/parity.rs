//! Parity with the official PyTorch implementations: every fixture manifest under
//! `$EMBER_PARITY_DIR` (default `../shared/parity`) is discovered and dispatched on its
//! `kind`: models are rebuilt from the manifest alone with the official weights loaded, losses
//! recomputed from the official inputs and hyperparameters, and each named output compared
//! within the manifest's tolerance. One line per fixture or case; kinds, families and sections
//! Ember does not have yet print `pending`. Runs without the test harness so the lines always
//! show.

#[path = "parity/compare.rs"]
mod compare;
#[path = "parity/dist.rs"]
mod dist;
#[path = "parity/dyrep.rs"]
mod dyrep;
#[path = "parity/greenmim.rs"]
mod greenmim;
#[path = "parity/maskd.rs"]
mod maskd;
#[path = "parity/model.rs"]
mod model;
#[path = "parity/sections.rs"]
mod sections;
#[path = "parity/ssl.rs"]
mod ssl;
#[path = "parity/taylorse.rs"]
mod taylorse;

use std::path::{Path, PathBuf};

use candle_core::Device;
use serde_json::Value;

pub enum Outcome {
    Ok(f64),
    Pending,
}

type Lines = Vec<(String, Result<Outcome, String>)>;

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

/// The lines of one manifest, named relative to `name` (FAMILY/STEM).
fn run(path: &Path, name: &str, dev: &Device) -> Lines {
    let manifest: Value = match std::fs::read_to_string(path)
        .map_err(|e| e.to_string())
        .and_then(|t| serde_json::from_str(&t).map_err(|e| format!("not JSON: {e}")))
    {
        Ok(m) => m,
        Err(e) => return vec![(name.to_string(), Err(e))],
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    let family = manifest["family"].as_str().unwrap_or("");
    match manifest["kind"].as_str() {
        Some("model") if family == "greenmim" => {
            vec![(name.to_string(), greenmim::model(dir, &manifest, dev))]
        }
        Some("model") if family == "taylorse" => taylorse::parity(dir, &manifest, dev)
            .into_iter()
            .map(|(part, r)| (format!("{name}/{part}"), r))
            .collect(),
        Some("model") => vec![(name.to_string(), model::parity(dir, &manifest, family, dev))],
        Some("grouping") => greenmim::grouping(&manifest)
            .into_iter()
            .map(|(case, r)| (format!("{name}/{case}"), r))
            .collect(),
        Some("loss" | "mixed") => sectioned(dir, &manifest, name),
        _ => vec![(name.to_string(), Ok(Outcome::Pending))],
    }
}

/// Sections by name: `dist`, `maskd`, `dyrep`, `ressl` and `lewel` are implemented; the others are pending until their issues land.
fn sectioned(dir: &Path, manifest: &Value, name: &str) -> Lines {
    let family = name.rsplit_once('/').map_or(name, |(f, _)| f);
    let tolerance = compare::Tolerance::from_manifest(&manifest["tolerance"]);
    let mut lines = Vec::new();
    for section in sections::sections(manifest) {
        let label = format!("{family}/{}", section.name);
        match section.name.as_str() {
            "dist" => match compare::load_file(dir, &section.io) {
                Ok(io) => lines.extend(
                    dist::cases(section.spec, &io, &tolerance)
                        .into_iter()
                        .map(|(case, r)| (format!("{label}/{case}"), r)),
                ),
                Err(e) => lines.push((label, Err(e))),
            },
            "maskd" => match with_weights(dir, manifest, &section) {
                Ok((io, weights)) => lines.extend(
                    maskd::cases(section.spec, &weights, &io, &tolerance)
                        .into_iter()
                        .map(|(case, r)| (format!("{label}/{case}"), r)),
                ),
                Err(e) => lines.push((label, Err(e))),
            },
            "ressl" | "lewel" => {
                let outcome = with_weights(dir, manifest, &section).and_then(|(io, weights)| {
                    if section.name == "ressl" {
                        ssl::ressl(section.spec, &weights, &io, &tolerance)
                    } else {
                        ssl::lewel(section.spec, &weights, &io, &tolerance)
                    }
                });
                lines.push((label, outcome));
            }
            "dyrep" => match with_weights(dir, manifest, &section) {
                Ok((io, weights)) => lines.extend(
                    dyrep::cases(section.spec, &weights, &io, &tolerance)
                        .into_iter()
                        .map(|(case, r)| (format!("{label}/{case}"), r)),
                ),
                Err(e) => lines.push((label, Err(e))),
            },
            _ => lines.push((label, Ok(Outcome::Pending))),
        }
    }
    if lines.is_empty() {
        lines.push((name.to_string(), Err("no sections found".into())));
    }
    lines
}

/// A section's io and weights files: the weights named by its `weights` field, or else the
/// manifest's `NAME.weights.safetensors` entry.
fn with_weights(
    dir: &Path,
    manifest: &Value,
    section: &sections::Section,
) -> Result<(compare::Tensors, compare::Tensors), String> {
    let io = compare::load_file(dir, &section.io)?;
    let sibling = format!("{}.weights.safetensors", section.name);
    let weights = match section.spec["weights"].as_str() {
        Some(w) => w,
        None if manifest.get(&sibling).is_some() => sibling.as_str(),
        None => return Err("no weights file".into()),
    };
    Ok((io, compare::load_file(dir, weights)?))
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
    let dev = device();
    println!("parity: models on {dev:?}");
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
        for (line, outcome) in run(path, &name, &dev) {
            match outcome {
                Ok(Outcome::Ok(diff)) => println!("parity {line}: ok (max abs diff {diff:.2e})"),
                Ok(Outcome::Pending) => println!("parity {line}: pending (not implemented yet)"),
                Err(e) => {
                    failures += 1;
                    println!("parity {line}: FAILED: {e}");
                }
            }
        }
    }
    if failures > 0 {
        eprintln!("{failures} parity fixture(s) failed");
        std::process::exit(1);
    }
}
