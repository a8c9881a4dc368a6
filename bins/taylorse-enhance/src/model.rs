//! Building TaylorSENet from a preset or config file, and loading it from a checkpoint, a run
//! folder or the Hub.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use ember_core::checkpoint::STATE_PREFIX;
use ember_core::hub::HubEnv;
use ember_core::{Checkpoint, CheckpointMeta, EmberError, Result, SeededVarMap};
use ember_models::taylorse::{TaylorSeConfig, TaylorSeNet};

pub const ARCH: &str = "taylorse";
pub const TASK: &str = "speech-enhancement";

/// A preset name (`small`, `official`) or a JSON file of constructor arguments; `order`
/// overrides the number of high-order terms (0: the 0th-order filter alone).
pub fn config_from(spec: &str, order: Option<usize>) -> Result<TaylorSeConfig> {
    let mut config = if Path::new(spec).is_file() {
        let text = std::fs::read_to_string(spec).map_err(|e| EmberError::io(spec, e))?;
        serde_json::from_str(&text)
            .map_err(|e| EmberError::bad_input(format!("{spec}: not a TaylorSENet config ({e})")))?
    } else if spec.ends_with(".json") {
        return Err(EmberError::bad_input(format!("{spec}: no such file")));
    } else {
        TaylorSeConfig::preset(spec)?
    };
    if let Some(order) = order {
        config.order_num = order;
    }
    config.validate()?;
    Ok(config)
}

/// A model and the variables that hold its weights.
pub struct Loaded {
    pub net: TaylorSeNet,
    pub vars: SeededVarMap,
}

pub fn build(config: &TaylorSeConfig, seed: u64, device: &Device) -> Result<Loaded> {
    let vars = SeededVarMap::new(seed);
    let net = TaylorSeNet::new(vars.var_builder(DType::F32, device), config)?;
    Ok(Loaded { net, vars })
}

/// The checkpoint file of `spec`: a run folder (its best.safetensors), a file, or hf://.
pub fn checkpoint_path(spec: &str) -> Result<PathBuf> {
    let path = Path::new(spec);
    if path.is_dir() {
        let best = path.join("best.safetensors");
        return if best.is_file() {
            Ok(best)
        } else {
            Err(EmberError::bad_input(format!("{spec}: a folder without best.safetensors (not a finished taylorse-enhance train run)")))
        };
    }
    HubEnv::from_env().resolve(spec)
}

/// The model saved in `spec` (its config from the checkpoint's metadata), frozen (see
/// [`frozen`]).
pub fn load(spec: &str, device: &Device) -> Result<TaylorSeNet> {
    let path = checkpoint_path(spec)?;
    let ckpt = Checkpoint::load(&path, device)?;
    if ckpt.meta.arch != ARCH {
        return Err(EmberError::bad_input(format!(
            "{}: a `{}` checkpoint, not a TaylorSENet one",
            path.display(),
            ckpt.meta.arch
        )));
    }
    let config: TaylorSeConfig = serde_json::from_value(ckpt.meta.config.clone()).map_err(|e| {
        EmberError::bad_input(format!(
            "{}: its TaylorSENet config does not parse ({e})",
            path.display()
        ))
    })?;
    let loaded = build(&config, 0, device)?;
    let weights = ckpt
        .tensors
        .into_iter()
        .filter(|(k, _)| !k.starts_with(STATE_PREFIX))
        .collect();
    // Loaded into variables first: that checks every name and shape with a clear error.
    ember_models::load_into(loaded.vars.vars(), &weights, &path.display().to_string())?;
    frozen(&loaded.vars, &config, device)
}

/// The network over the current values of `vars` held as constants: a forward then records
/// no autograd graph, so activations are freed as it goes (with variables, a 10-second piece
/// kept every intermediate alive: gigabytes). The weights share storage with `vars`.
pub fn frozen(
    vars: &SeededVarMap,
    config: &TaylorSeConfig,
    device: &Device,
) -> Result<TaylorSeNet> {
    TaylorSeNet::new(
        VarBuilder::from_tensors(vars.constants(), DType::F32, device),
        config,
    )
}

/// The metadata of a TaylorSENet checkpoint.
pub fn meta(config: &TaylorSeConfig) -> CheckpointMeta {
    CheckpointMeta::new(
        ARCH,
        serde_json::to_value(config).expect("configs serialise"),
        TASK,
        Vec::new(),
    )
}
