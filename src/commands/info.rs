use candle_core::Device;
use ember_core::hub::HubEnv;
use ember_core::{Checkpoint, Result};
use serde_json::{json, Value};

use crate::cli::InfoCommand;

pub fn run(cmd: &InfoCommand) -> Result<Value> {
    let path = HubEnv::from_env().resolve(&cmd.checkpoint)?;
    let ckpt = Checkpoint::load(&path, &Device::Cpu)?;
    let m = &ckpt.meta;
    let extra = |key: &str| {
        m.extra
            .get(key)
            .and_then(|s| serde_json::from_str::<Value>(s).ok())
    };
    Ok(json!({
        "checkpoint": path.display().to_string(),
        "arch": m.arch,
        "config": m.config,
        "task": m.task,
        "labels": m.labels,
        "version": m.version,
        "parameters": ckpt.parameter_count(),
        "tensors": ckpt.model_tensors().count(),
        "metrics": m.metrics,
        "preprocess": extra("preprocess"),
        "resumable": m.extra.contains_key("train_state"),
    }))
}
