//! MasKD sections: one case per entry of `hyperparameters` (`det`: the detection-style feature
//! loss with token weights, per level; `seg`: the logit loss). The mask modules are built from
//! the official weights (`mask_modules.{level}.*`, `mask_module.*`) and every tensor named
//! `{case}.*` is recomputed from its name.

use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor, Var};
use ember_core::SeededVarMap;
use ember_losses::{
    cross_entropy, custom_masks, dice_diversity, masked_feature_loss, MaskModule, MaskedLogitLoss,
};
use serde_json::Value;

use crate::compare::{self, err, get, Checks, Tensors, Tolerance};
use crate::Outcome;

pub fn cases(
    spec: &Value,
    weights: &Tensors,
    io: &Tensors,
    tol: &Tolerance,
) -> Vec<(String, Result<Outcome, String>)> {
    let cases = match compare::cases(spec, None) {
        Ok(c) => c,
        Err(e) => return vec![(String::new(), Err(e))],
    };
    cases
        .into_iter()
        .map(|c| {
            // Detection has one channel count per level; segmentation one for its logits.
            let outcome = if c.hp["channels"].is_array() {
                detection(c.hp, &c.prefix, &c.outputs, weights, io, tol)
            } else {
                segmentation(c.hp, &c.prefix, &c.outputs, weights, io, tol)
            };
            (c.name.to_string(), outcome)
        })
        .collect()
}

/// Mask modules built under the official names, then loaded with the fixture's weights.
fn modules(
    weights: &Tensors,
    prefixes: &[String],
    tokens: usize,
    weight_mask: bool,
) -> Result<(SeededVarMap, Vec<MaskModule>), String> {
    let vars = SeededVarMap::new(0);
    let vb = vars.var_builder(DType::F32, &Device::Cpu);
    let mut built = Vec::new();
    for p in prefixes {
        let token = get(weights, &format!("{p}.mask_token"))?;
        let channels = token.dims()[1];
        built.push(MaskModule::new(vb.pp(p), channels, tokens, weight_mask).map_err(err)?);
    }
    let mine: Tensors = weights
        .iter()
        .filter(|(k, _)| prefixes.iter().any(|p| k.starts_with(&format!("{p}."))))
        .map(|(k, t)| (k.clone(), t.clone()))
        .collect();
    ember_models::load_into(vars.vars(), &mine, "the fixture's mask modules").map_err(err)?;
    Ok((vars, built))
}

fn grad_of(grads: &GradStore, v: &Var, name: &str) -> Result<Tensor, String> {
    grads
        .get(v.as_tensor())
        .cloned()
        .ok_or(format!("no gradient reached {name}"))
}

/// The gradients in `slot`, made by `make` the first time.
fn cached(
    slot: &mut Option<GradStore>,
    make: impl FnOnce() -> Result<GradStore, String>,
) -> Result<&GradStore, String> {
    if slot.is_none() {
        *slot = Some(make()?);
    }
    Ok(slot.as_ref().expect("filled above"))
}

/// `name` split into its stem and a trailing level number (`mask_t.1` -> (`mask_t`, 1)).
fn level_of(name: &str) -> Option<(&str, usize)> {
    let (stem, l) = name.rsplit_once('.')?;
    Some((stem, l.parse().ok()?))
}

fn detection(
    hp: &Value,
    prefix: &str,
    outputs: &[&str],
    weights: &Tensors,
    io: &Tensors,
    tol: &Tolerance,
) -> Result<Outcome, String> {
    let levels = hp["channels"].as_array().ok_or("no `channels`")?.len();
    let tokens = hp["num_tokens"].as_u64().ok_or("no `num_tokens`")? as usize;
    let weight_mask = hp["weight_mask"].as_bool().unwrap_or(true);
    let lambda = hp["loss_weight"].as_f64().unwrap_or(1.0);
    let warmup = hp["custom_mask_warmup"].as_u64();
    let custom_at = |key: &str| -> Result<bool, String> {
        let iter = hp[key].as_u64().ok_or(format!("no `{key}`"))?;
        Ok(hp["custom_mask"].as_bool().unwrap_or(false) && warmup.is_some_and(|w| iter >= w))
    };
    if !weight_mask {
        return Err("the detection case needs the token-weighting head".into());
    }
    let prefixes: Vec<String> = (0..levels).map(|l| format!("mask_modules.{l}")).collect();
    let (vars, mods) = modules(weights, &prefixes, tokens, weight_mask)?;
    let input = |what: &str, l: usize| get(io, &format!("{prefix}{what}.{l}")).cloned();
    let teachers: Vec<Tensor> = (0..levels)
        .map(|l| input("teacher", l))
        .collect::<Result<_, _>>()?;
    let students: Vec<Var> = (0..levels)
        .map(|l| Var::from_tensor(&input("student", l)?).map_err(err))
        .collect::<Result<_, _>>()?;

    // The distillation loss per level, plain or with the custom (student) mask.
    let level_loss = |l: usize, custom: bool| -> candle_core::Result<Tensor> {
        let mut masks = mods[l].masks(&teachers[l])?;
        if custom {
            masks = custom_masks(&mods[l], &masks, students[l].as_tensor())?;
        }
        let p = mods[l].token_weights(&teachers[l])?.expect("weight_mask");
        masked_feature_loss(&masks, &p, students[l].as_tensor(), &teachers[l])? * lambda
    };
    let total = |custom: bool| -> candle_core::Result<Tensor> {
        let mut sum = level_loss(0, custom)?;
        for l in 1..levels {
            sum = (sum + level_loss(l, custom)?)?;
        }
        Ok(sum)
    };
    let stage1_total = || -> candle_core::Result<Tensor> {
        let mut sum = Tensor::zeros((), DType::F32, &Device::Cpu)?;
        for (m, t) in mods.iter().zip(&teachers) {
            let masked = m.masked(t)?;
            sum = ((sum + masked.output.sqr()?.mean_all()?)? + dice_diversity(&masked.masks)?)?;
        }
        Ok(sum)
    };

    // Each backward pass once, whichever outputs read it.
    let (mut plain_grads, mut custom_grads, mut stage1_grads) = (None, None, None);
    let mut c = Checks { tol, worst: 0.0 };
    for &name in outputs {
        let full = format!("{prefix}{name}");
        let theirs = get(io, &full)?;
        let ours = match name {
            "loss_plain" => total(custom_at("iter_plain")?).map_err(err)?,
            "loss_custom" => total(custom_at("iter_custom")?).map_err(err)?,
            "stage1_total" => stage1_total().map_err(err)?,
            _ => {
                if let Some(param) = name.strip_prefix("stage1_grad.") {
                    let grads = cached(&mut stage1_grads, || {
                        stage1_total().and_then(|t| t.backward()).map_err(err)
                    })?;
                    let (_, v) = vars
                        .named()
                        .into_iter()
                        .find(|(n, _)| n == param)
                        .ok_or(format!("we have no variable `{param}`"))?;
                    grad_of(grads, &v, param)?
                } else {
                    let (stem, l) = level_of(name).ok_or(format!("unknown output `{full}`"))?;
                    if l >= levels {
                        return Err(format!("`{full}`: level {l} of {levels}"));
                    }
                    let (m, t, s) = (&mods[l], &teachers[l], students[l].as_tensor());
                    match stem {
                        "teacher" | "student" => continue,
                        "mask_t" => m.masks(t).map_err(err)?,
                        "mask_s" => m.masks(s).map_err(err)?,
                        "prob" => m.token_weights(t).map_err(err)?.ok_or("no weights")?,
                        "dice" => m.masks(t).and_then(|x| dice_diversity(&x)).map_err(err)?,
                        "loss_plain_level" => {
                            level_loss(l, custom_at("iter_plain")?).map_err(err)?
                        }
                        "stage1_out" => m.masked(t).map_err(err)?.output,
                        "grad_student_plain" | "grad_student_custom" => {
                            let (key, slot) = if stem.ends_with("plain") {
                                ("iter_plain", &mut plain_grads)
                            } else {
                                ("iter_custom", &mut custom_grads)
                            };
                            let grads = cached(slot, || {
                                total(custom_at(key)?)
                                    .and_then(|x| x.backward())
                                    .map_err(err)
                            })?;
                            grad_of(grads, &students[l], &full)?
                        }
                        _ => return Err(format!("unknown MasKD output `{full}`")),
                    }
                }
            }
        };
        c.check(&full, &ours, theirs)?;
    }
    Ok(Outcome::Ok(c.worst))
}

fn segmentation(
    hp: &Value,
    prefix: &str,
    outputs: &[&str],
    weights: &Tensors,
    io: &Tensors,
    tol: &Tolerance,
) -> Result<Outcome, String> {
    let module = "mask_module".to_string();
    let tokens = get(weights, &format!("{module}.mask_token"))?.dims()[0];
    let (vars, mods) = modules(weights, std::slice::from_ref(&module), tokens, false)?;
    let m = &mods[0];
    let loss = MaskedLogitLoss {
        scale: hp["loss_scale"]
            .as_f64()
            .unwrap_or(MaskedLogitLoss::default().scale),
        eps: hp["denominator_eps"]
            .as_f64()
            .unwrap_or(MaskedLogitLoss::default().eps),
    };
    let teacher = get(io, &format!("{prefix}teacher"))?;
    let student = Var::from_tensor(get(io, &format!("{prefix}student"))?).map_err(err)?;
    let distill = || -> candle_core::Result<Tensor> {
        loss.loss(&m.masks(teacher)?, student.as_tensor(), teacher)
    };
    // Stage 1: CE of the masked logits against the targets, plus the Dice loss.
    let stage1 = || -> Result<(Tensor, Tensor, Tensor), String> {
        let target = get(io, &format!("{prefix}stage1_target"))?;
        let masked = m.masked(teacher).map_err(err)?;
        let (n, k, h, w) = masked.output.dims4().map_err(err)?;
        let rows = masked
            .output
            .permute((0, 2, 3, 1))
            .and_then(|x| x.reshape((n * h * w, k)))
            .map_err(err)?;
        let ce = cross_entropy(&rows, &target.flatten_all().map_err(err)?, 0.0).map_err(err)?;
        let dice = dice_diversity(&masked.masks).map_err(err)?;
        Ok((masked.output, ce, dice))
    };
    let token_var = |vars: &SeededVarMap| {
        vars.named()
            .into_iter()
            .find(|(n, _)| *n == format!("{module}.mask_token"))
            .map(|(_, v)| v)
            .ok_or("no token variable".to_string())
    };

    let mut c = Checks { tol, worst: 0.0 };
    for &name in outputs {
        let full = format!("{prefix}{name}");
        let theirs = get(io, &full)?;
        let ours = match name {
            "teacher" | "student" | "stage1_target" => continue,
            "mask_t" => m.masks(teacher).map_err(err)?,
            "dice" | "stage1_dice" => m
                .masks(teacher)
                .and_then(|x| dice_diversity(&x))
                .map_err(err)?,
            "loss" | "loss_f64" => distill().map_err(err)?,
            "grad_student" => {
                let grads = distill().and_then(|l| l.backward()).map_err(err)?;
                grad_of(&grads, &student, &full)?
            }
            "stage1_out" => stage1()?.0,
            "stage1_ce" => stage1()?.1,
            "stage1_grad_mask_token" => {
                let (_, ce, dice) = stage1()?;
                let grads = (ce + dice).and_then(|t| t.backward()).map_err(err)?;
                grad_of(&grads, &token_var(&vars)?, &full)?
            }
            _ => return Err(format!("unknown MasKD output `{full}`")),
        };
        c.check(&full, &ours, theirs)?;
    }
    Ok(Outcome::Ok(c.worst))
}
