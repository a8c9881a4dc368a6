//! A model rebuilt from a self-describing checkpoint alone: its `ember.arch` names the
//! family, `ember.config` the config; the weights then load by name.

use std::path::Path;

use candle_core::{DType, Device};
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
