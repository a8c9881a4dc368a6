//! `ember info`: what a checkpoint holds (arch, config, labels, metrics, preprocessing), or
//! what an arch is; both with parameter and multiply-accumulate counts from the config.

use candle_core::{DType, Device};
use ember_core::hub::HubEnv;
use ember_core::{Checkpoint, Result, SeededVarMap};
use ember_models::registry;
use serde_json::{json, Value};

use crate::cli::InfoCommand;

pub fn run(cmd: &InfoCommand) -> Result<Value> {
    match (&cmd.checkpoint, &cmd.arch) {
        (Some(spec), _) => checkpoint(spec, cmd.input_size),
        (None, Some(arch)) => arch_info(arch, cmd),
        (None, None) => unreachable!("clap requires a checkpoint or --arch"),
    }
}

fn checkpoint(spec: &str, input_size: Option<usize>) -> Result<Value> {
    let path = HubEnv::from_env().resolve(spec)?;
    let ckpt = Checkpoint::load(&path, &Device::Cpu)?;
    let m = &ckpt.meta;
    let extra = |key: &str| {
        m.extra
            .get(key)
            .and_then(|s| serde_json::from_str::<Value>(s).ok())
    };
    let preprocess = extra("preprocess");
    let trained_size = preprocess
        .as_ref()
        .and_then(|p| p["height"].as_u64())
        .map(|h| h as usize);
    let side = input_size
        .or(trained_size)
        .unwrap_or_else(|| registry::default_input_size(&m.arch, &m.config));
    Ok(json!({
        "checkpoint": path.display().to_string(),
        "arch": m.arch,
        "config": m.config,
        "task": m.task,
        "labels": m.labels,
        "version": m.version,
        "parameters": ckpt.parameter_count(),
        "tensors": ckpt.model_tensors().count(),
        "input_size": side,
        "gmacs": registry::macs(&m.arch, &m.config, side, side).ok(),
        "metrics": m.metrics,
        "preprocess": preprocess,
        "distill": extra("distill"),
        "dyrep": extra("dyrep"),
        "pretrained": extra("pretrained"),
        "deployed_from": m.extra.get("deployed_from"),
        "resumable": m.extra.contains_key("train_state"),
    }))
}

fn arch_info(arch: &str, cmd: &InfoCommand) -> Result<Value> {
    let overrides = ember_cli::supervised::model_overrides(&cmd.model_config)?;
    let cfg = ember_models::resolve(arch, &overrides)?;
    let side = cmd
        .input_size
        .unwrap_or_else(|| registry::default_input_size(&cfg.family, &cfg.config));
    let gmacs = registry::macs(&cfg.family, &cfg.config, side, side)?;
    let vars = SeededVarMap::new(0);
    registry::build(
        &cfg.family,
        &cfg.config,
        vars.var_builder(DType::F32, &Device::Cpu),
    )?;
    Ok(json!({
        "arch": arch,
        "family": cfg.family,
        "config": cfg.config,
        "parameters": registry::parameter_count(vars.vars()),
        "input_size": side,
        "gmacs": gmacs,
    }))
}
