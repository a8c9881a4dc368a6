//! A model rebuilt from a self-describing checkpoint alone: its `ember.arch` names the
//! family, `ember.config` the config; the weights then load by name.

use std::path::Path;

use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use ember_core::{Checkpoint, EmberError, Result, SeededVarMap};

use crate::registry::{build, Classifier, FAMILIES};
use crate::weights::load_into;

pub struct LoadedModel {
    pub model: Box<dyn Classifier>,
    pub vars: SeededVarMap,
    pub checkpoint: Checkpoint,
}

/// Loads the checkpoint at `path` and the model it describes. `expect_arch`, when given,
/// must match the checkpoint's family.
pub fn load_checkpoint(
    path: &Path,
    device: &Device,
    dtype: DType,
    expect_arch: Option<&str>,
) -> Result<LoadedModel> {
    let checkpoint = Checkpoint::load(path, device)?;
    let family = checkpoint.meta.arch.as_str();
    if !FAMILIES.contains(&family) {
        return Err(EmberError::bad_input(format!(
            "{}: checkpoint of arch `{family}`, which this build does not know (known: {})",
            path.display(),
            FAMILIES.join(", ")
        )));
    }
    if let Some(expected) = expect_arch {
        if expected != family {
            return Err(EmberError::bad_input(format!(
                "{}: checkpoint of arch `{family}`, expected `{expected}`",
                path.display()
            )));
        }
    }
    let vars = SeededVarMap::new(0);
    let model = build(
        family,
        &checkpoint.meta.config,
        vars.var_builder(dtype, device),
    )?;
    load_into(
        vars.vars(),
        &checkpoint.tensors,
        &path.display().to_string(),
    )?;
    Ok(LoadedModel {
        model,
        vars,
        checkpoint,
    })
}

/// The model of `path` with its weights as constants rather than variables, for a frozen
/// network such as a distillation teacher: its forward records no autograd graph, so the
/// activations are freed as it goes. Checked exactly as [`load_checkpoint`] checks.
pub fn load_frozen(
    path: &Path,
    device: &Device,
    dtype: DType,
) -> Result<(Box<dyn Classifier>, Checkpoint)> {
    let loaded = load_checkpoint(path, device, dtype, None)?;
    let constants = loaded.vars.constants();
    let checkpoint = loaded.checkpoint;
    let model = build(
        &checkpoint.meta.arch,
        &checkpoint.meta.config,
        VarBuilder::from_tensors(constants, dtype, device),
    )?;
    Ok((model, checkpoint))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ember_core::CheckpointMeta;

    #[test]
    fn a_frozen_model_matches_the_loaded_one_and_builds_no_graph() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.safetensors");
        let overrides = serde_json::json!({
            "layers": [1, 1, 1, 1], "channels": [4, 4, 8, 8], "stem_width": 4,
            "stem_type": "small", "in_chans": 1, "num_classes": 3
        });
        let config = crate::resolve("resnet", &overrides).unwrap().config;
        let vars = SeededVarMap::new(3);
        build(
            "resnet",
            &config,
            vars.var_builder(DType::F32, &Device::Cpu),
        )
        .unwrap();
        let tensors = vars.tensors();
        let meta = CheckpointMeta::new("resnet", config, "classification", vec![]);
        Checkpoint::save(&path, &meta, tensors.iter().map(|(k, t)| (k.as_str(), t))).unwrap();

        let x = candle_core::Tensor::randn(0f32, 1.0, (2, 1, 8, 8), &Device::Cpu).unwrap();
        let loaded = load_checkpoint(&path, &Device::Cpu, DType::F32, None).unwrap();
        let live = loaded.model.forward_t(&x, false).unwrap();
        assert!(live.track_op(), "variables record the graph");
        let (frozen, _) = load_frozen(&path, &Device::Cpu, DType::F32).unwrap();
        let out = frozen.forward_t(&x, false).unwrap();
        assert!(!out.track_op(), "constants do not");
        let diff: f32 = (out - live)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar()
            .unwrap();
        assert_eq!(diff, 0.0);
    }
}
