//! The self-describing checkpoint: one `.safetensors` file whose metadata says what the
//! weights are, so any tool rebuilds the model from the file alone.
//!
//! | metadata key | value |
//! |---|---|
//! | `ember.arch` | registry name of the model (`resnet`) |
//! | `ember.config` | the model config as JSON |
//! | `ember.task` | `classification`, ... |
//! | `ember.labels` | JSON list of class names |
//! | `ember.version` | the Ember version that wrote it |
//! | `ember.metrics` | JSON object of the metrics at save time |
//!
//! Other `ember.*` keys (a trainer's resume state) ride along untouched. Tensor names are
//! the official PyTorch state_dict keys; tensors whose name starts with [`STATE_PREFIX`]
//! hold training state (optimizer moments, EMA) and are not part of the model.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use candle_core::{Device, Tensor};
use serde_json::Value;

use crate::atomic::write_atomic;
use crate::error::{EmberError, Result};

/// Tensors under this prefix are training state, never model weights. `@` cannot start a
/// PyTorch state_dict key, so no model parameter collides with it.
pub const STATE_PREFIX: &str = "@train/";

/// Whether a model tensor is a buffer (BatchNorm running statistics) rather than a
/// learnt parameter: buffers are saved and loaded, but neither optimised nor counted as
/// parameters (PyTorch's `parameters()` leaves them out too).
pub fn is_buffer(name: &str) -> bool {
    name.ends_with("running_mean") || name.ends_with("running_var")
}

/// What a checkpoint says about itself.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckpointMeta {
    pub arch: String,
    pub config: Value,
    pub task: String,
    pub labels: Vec<String>,
    pub version: String,
    pub metrics: Value,
    /// Further `ember.*` entries, keyed without the `ember.` prefix.
    pub extra: BTreeMap<String, String>,
}

impl CheckpointMeta {
    pub fn new(arch: &str, config: Value, task: &str, labels: Vec<String>) -> Self {
        Self {
            arch: arch.to_string(),
            config,
            task: task.to_string(),
            labels,
            version: env!("CARGO_PKG_VERSION").to_string(),
            metrics: Value::Object(Default::default()),
            extra: BTreeMap::new(),
        }
    }

    fn to_map(&self) -> HashMap<String, String> {
        let mut map: HashMap<String, String> = self
            .extra
            .iter()
            .map(|(k, v)| (format!("ember.{k}"), v.clone()))
            .collect();
        map.insert("ember.arch".into(), self.arch.clone());
        map.insert("ember.config".into(), self.config.to_string());
        map.insert("ember.task".into(), self.task.clone());
        map.insert(
            "ember.labels".into(),
            Value::from(self.labels.clone()).to_string(),
        );
        map.insert("ember.version".into(), self.version.clone());
        map.insert("ember.metrics".into(), self.metrics.to_string());
        map
    }

    fn from_map(path: &Path, map: &HashMap<String, String>) -> Result<Self> {
        let bad = |what: &str| {
            EmberError::bad_input(format!(
                "{}: {what}; not an Ember checkpoint (it needs ember.arch and ember.config metadata)",
                path.display()
            ))
        };
        let json = |key: &str| -> Result<Value> {
            let text = map
                .get(key)
                .ok_or_else(|| bad(&format!("no {key} metadata")))?;
            serde_json::from_str(text).map_err(|e| bad(&format!("{key} is not JSON ({e})")))
        };
        let arch = map
            .get("ember.arch")
            .ok_or_else(|| bad("no ember.arch metadata"))?;
        let labels = match map.get("ember.labels") {
            Some(_) => serde_json::from_value(json("ember.labels")?)
                .map_err(|e| bad(&format!("ember.labels is not a list of strings ({e})")))?,
            None => Vec::new(),
        };
        let metrics = match map.get("ember.metrics") {
            Some(_) => json("ember.metrics")?,
            None => Value::Object(Default::default()),
        };
        let known = ["arch", "config", "task", "labels", "version", "metrics"];
        let extra = map
            .iter()
            .filter_map(|(k, v)| Some((k.strip_prefix("ember.")?.to_string(), v.clone())))
            .filter(|(k, _)| !known.contains(&k.as_str()))
            .collect();
        Ok(Self {
            arch: arch.clone(),
            config: json("ember.config")?,
            task: map.get("ember.task").cloned().unwrap_or_default(),
            labels,
            version: map.get("ember.version").cloned().unwrap_or_default(),
            metrics,
            extra,
        })
    }
}

/// A loaded checkpoint: its metadata and every tensor in it (model and training state).
#[derive(Debug)]
pub struct Checkpoint {
    pub meta: CheckpointMeta,
    pub tensors: HashMap<String, Tensor>,
}

impl Checkpoint {
    /// Writes `tensors` with `meta` to `path` atomically.
    pub fn save<'a>(
        path: &Path,
        meta: &CheckpointMeta,
        tensors: impl IntoIterator<Item = (&'a str, &'a Tensor)>,
    ) -> Result<()> {
        let mut owned: Vec<(String, Tensor)> = Vec::new();
        for (name, t) in tensors {
            owned.push((name.to_string(), t.to_device(&Device::Cpu)?.contiguous()?));
        }
        let bytes = safetensors::serialize(owned, Some(meta.to_map()))
            .map_err(|e| EmberError::Runtime(format!("{}: {e}", path.display())))?;
        write_atomic(path, &bytes)
    }

    /// Reads a checkpoint; a file that is not safetensors, or has no Ember metadata, is bad
    /// input.
    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        let (bytes, map) = read_safetensors(path)?;
        let meta = CheckpointMeta::from_map(path, &map)?;
        let tensors = candle_core::safetensors::load_buffer(&bytes, device)
            .map_err(|e| not_safetensors(path, e))?;
        Ok(Self { meta, tensors })
    }

    /// The model's weights: every tensor that is not training state.
    pub fn model_tensors(&self) -> impl Iterator<Item = (&String, &Tensor)> {
        self.tensors
            .iter()
            .filter(|(k, _)| !k.starts_with(STATE_PREFIX))
    }

    /// Number of learnt model parameters (buffers and training state excluded), as
    /// PyTorch's `sum(p.numel() for p in model.parameters())`.
    pub fn parameter_count(&self) -> usize {
        self.model_tensors()
            .filter(|(k, _)| !is_buffer(k))
            .map(|(_, t)| t.elem_count())
            .sum()
    }
}

/// Reads a safetensors file and its metadata table. Only the header is parsed here; a
/// truncated body shows up when the tensors are loaded.
fn read_safetensors(path: &Path) -> Result<(Vec<u8>, HashMap<String, String>)> {
    let bytes = std::fs::read(path).map_err(|e| EmberError::io(path, e))?;
    let (_, header) =
        safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| not_safetensors(path, e))?;
    let map = header.metadata().clone().unwrap_or_default();
    Ok((bytes, map))
}

fn not_safetensors(path: &Path, err: impl std::fmt::Display) -> EmberError {
    EmberError::bad_input(format!(
        "{}: not a valid safetensors file ({err})",
        path.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample(dir: &Path) -> std::path::PathBuf {
        let path = dir.join("m.safetensors");
        let mut meta = CheckpointMeta::new(
            "resnet",
            json!({"layers": [1, 1]}),
            "classification",
            vec!["a".into(), "b".into()],
        );
        meta.metrics = json!({"top1": 0.5});
        meta.extra
            .insert("train_state".into(), "{\"epoch\":3}".into());
        let w = Tensor::arange(0f32, 6., &Device::Cpu)
            .unwrap()
            .reshape((2, 3))
            .unwrap();
        let m = Tensor::ones(2, candle_core::DType::F32, &Device::Cpu).unwrap();
        let state_name = format!("{STATE_PREFIX}momentum/fc.weight");
        Checkpoint::save(&path, &meta, [("fc.weight", &w), (state_name.as_str(), &m)]).unwrap();
        path
    }

    #[test]
    fn round_trips_metadata_and_tensors() {
        let dir = tempfile::tempdir().unwrap();
        let path = sample(dir.path());
        let ckpt = Checkpoint::load(&path, &Device::Cpu).unwrap();
        assert_eq!(ckpt.meta.arch, "resnet");
        assert_eq!(ckpt.meta.config, json!({"layers": [1, 1]}));
        assert_eq!(ckpt.meta.labels, vec!["a", "b"]);
        assert_eq!(ckpt.meta.metrics["top1"], 0.5);
        assert_eq!(ckpt.meta.extra["train_state"], "{\"epoch\":3}");
        assert_eq!(ckpt.parameter_count(), 6);
        let w = ckpt.tensors["fc.weight"]
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert_eq!(w, vec![0., 1., 2., 3., 4., 5.]);
    }

    #[test]
    fn truncated_and_foreign_files_are_bad_input() {
        let dir = tempfile::tempdir().unwrap();
        let path = sample(dir.path());
        let bytes = std::fs::read(&path).unwrap();
        let cut = dir.path().join("cut.safetensors");
        std::fs::write(&cut, &bytes[..bytes.len() - 5]).unwrap();
        let text = dir.path().join("notes.txt");
        std::fs::write(&text, "hello world, not tensors").unwrap();
        for p in [&cut, &text] {
            let err = Checkpoint::load(p, &Device::Cpu).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{err}");
            assert!(
                err.to_string().contains("not a valid safetensors file"),
                "{err}"
            );
        }
    }

    #[test]
    fn safetensors_without_ember_metadata_is_bad_input() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plain.safetensors");
        let t = Tensor::zeros(3, candle_core::DType::F32, &Device::Cpu).unwrap();
        candle_core::safetensors::save(&HashMap::from([("w".to_string(), t)]), &path).unwrap();
        let err = Checkpoint::load(&path, &Device::Cpu).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("not an Ember checkpoint"), "{err}");
    }
}
