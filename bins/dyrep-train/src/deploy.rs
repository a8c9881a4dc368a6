//! `dyrep-train deploy`: every block of a checkpoint folded into one convolution, whose bias
//! goes into the BN that follows it (`BN(conv(x) + b)` is `BN'(conv(x))` with the running mean
//! lowered by `b`, exactly, in eval mode). The result is the plain network's own checkpoint,
//! for `ember eval` / `ember predict`; the official `convert.py` keeps a biased
//! `conv_deployed` instead, which is the same function but not the plain architecture.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use ember_core::{Checkpoint, EmberError, Result, SeededVarMap};
use ember_data::Preprocess;
use ember_models::rep::RepPlan;
use ember_models::Classifier;
use serde_json::{json, Value};

use crate::evolve::with_plan;

/// A checkpoint's model, built from its metadata and loaded.
fn load_model(ckpt: &Checkpoint, what: &str) -> Result<(Box<dyn Classifier>, SeededVarMap)> {
    let vars = SeededVarMap::new(0);
    let model = ember_models::build(
        &ckpt.meta.arch,
        &ckpt.meta.config,
        vars.var_builder(DType::F32, &Device::Cpu),
    )?;
    let weights = ember_train::trainer::model_weights(ckpt);
    ember_models::load_into(vars.vars(), &weights, what)?;
    Ok((model, vars))
}

/// Median milliseconds of `step` on each model, timed in alternation (round after round,
/// after two warm-up rounds) so that a busy machine slows them alike and their ratios hold.
fn median_ms(
    models: &[&dyn Classifier],
    step: impl Fn(&dyn Classifier) -> Result<()>,
) -> Result<Vec<f64>> {
    let mut times = vec![Vec::new(); models.len()];
    for round in 0..12 {
        for (model, t) in models.iter().zip(times.iter_mut()) {
            let start = Instant::now();
            step(*model)?;
            if round >= 2 {
                t.push(start.elapsed().as_secs_f64() * 1e3);
            }
        }
    }
    Ok(times
        .into_iter()
        .map(|mut t| {
            t.sort_by(f64::total_cmp);
            t[t.len() / 2]
        })
        .collect())
}

/// An eval-mode forward of `x`.
fn forward(model: &dyn Classifier, x: &Tensor) -> Result<()> {
    model.forward_t(x, false)?;
    Ok(())
}

/// A training step's computation: training-mode forward of `x`, cross-entropy against
/// class 0, backward (no update: the weights stay as loaded).
fn train_step(model: &dyn Classifier, x: &Tensor) -> Result<()> {
    let logits = model.forward_t(x, true)?;
    let labels = Tensor::zeros(x.dim(0)?, DType::U32, x.device())?;
    ember_losses::cross_entropy(&logits, &labels, 0.0)?.backward()?;
    Ok(())
}

/// Writes the deployed network of `input` to `output` and reports what was folded, how far
/// the deployed outputs are from the trained ones on a random batch (eval mode), the time
/// of a 128-image forward pass of each and of a training step (forward and backward) of the
/// trained one (and of `baseline`'s model, when given: the
/// plain network trained without re-parameterisation).
pub fn deploy(input: &Path, output: &Path, baseline: Option<&Path>) -> Result<Value> {
    let what = input.display().to_string();
    let ckpt = Checkpoint::load(input, &Device::Cpu)?;
    let (model, vars) = load_model(&ckpt, &what)?;
    let mut tensors: BTreeMap<String, Tensor> = vars
        .named()
        .into_iter()
        .map(|(k, v)| (k, v.as_tensor().detach()))
        .collect();
    let mut folded = Vec::new();
    for site in model.rep_sites() {
        let slot = &site.conv;
        let mut plan = RepPlan::default();
        slot.record(&mut plan);
        if plan.is_empty() {
            continue;
        }
        let path = slot.path().to_string();
        let (w, b) = slot.kernel()?;
        let bn = site.next_bn.ok_or_else(|| {
            EmberError::bad_input(format!(
                "{what}: no BN follows {path}, so its merged bias has nowhere to go"
            ))
        })?;
        let mean_key = format!("{bn}.running_mean");
        let mean = tensors
            .get(&mean_key)
            .ok_or_else(|| EmberError::bad_input(format!("{what}: lacks {mean_key}")))?;
        let lowered = (mean - &b)?;
        tensors.retain(|k, _| !k.starts_with(&format!("{path}.")));
        tensors.insert(format!("{path}.weight"), w);
        tensors.insert(mean_key, lowered);
        folded.push(path);
    }
    let mut meta = ckpt.meta.clone();
    meta.config = with_plan(&ckpt.meta.config, &RepPlan::default());
    meta.extra.insert("deployed_from".into(), what.clone());
    meta.extra.remove("train_state");
    meta.extra.remove("structure_state");
    Checkpoint::save(output, &meta, tensors.iter().map(|(k, t)| (k.as_str(), t)))?;

    // The deployed network must compute what the trained one does.
    let deployed = Checkpoint::load(output, &Device::Cpu)?;
    let (plain, _) = load_model(&deployed, &output.display().to_string())?;
    let prep = Preprocess::of_checkpoint(&ckpt.meta, &what)?;
    let x = Tensor::randn(
        0f32,
        1.0,
        (128, prep.channels, prep.height, prep.width),
        &Device::Cpu,
    )?;
    let diff = (model.forward_t(&x, false)? - plain.forward_t(&x, false)?)?
        .abs()?
        .max_all()?
        .to_scalar::<f32>()?;
    let base = match baseline {
        Some(p) => {
            let ckpt = Checkpoint::load(p, &Device::Cpu)?;
            Some(load_model(&ckpt, &p.display().to_string())?.0)
        }
        None => None,
    };
    let mut models: Vec<&dyn Classifier> = vec![model.as_ref(), plain.as_ref()];
    models.extend(base.as_deref());
    let ms = median_ms(&models, |m| forward(m, &x))?;
    let mut timing = json!({ "trained": ms[0], "deployed": ms[1] });
    if let Some(b) = ms.get(2) {
        timing["baseline"] = json!(b);
    }
    // The trained structure's training step against the baseline's (the deployed network
    // is the baseline's architecture), in the same process.
    let mut stepped: Vec<&dyn Classifier> = vec![model.as_ref()];
    stepped.extend(base.as_deref());
    let steps = median_ms(&stepped, |m| train_step(m, &x))?;
    let mut train_timing = json!({ "trained": steps[0] });
    if let Some(b) = steps.get(1) {
        train_timing["baseline"] = json!(b);
    }
    Ok(json!({
        "command": "deploy",
        "checkpoint": output.display().to_string(),
        "folded": folded,
        "max_abs_diff": diff,
        "forward_ms_batch128": timing,
        "train_step_ms_batch128": train_timing,
    }))
}
