//! GreenMIM fixtures. `kind: model`: the masked autoencoder rebuilt from the official factory
//! arguments with the official weights, fed the stored images and mask, every stored output
//! compared (stage coordinates, block outputs, merges, latent, decoder, prediction, targets
//! and both losses). `kind: grouping`: the window packing against the official functions,
//! exactly, with within-window token order compared as sets (the official sort is unstable).

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use ember_core::SeededVarMap;
use ember_models::mim::{self, GreenMim, UnitMask};
use ember_models::swin::grouping as mim_grouping;
use ember_models::swin::{Mode, WindowLayout};
use ember_models::taps::Taps;
use serde_json::Value;

use crate::compare::{err, get, load_file, Tolerance};
use crate::{Lines, Outcome};

pub fn model(dir: &Path, manifest: &Value, dev: &Device) -> Result<Outcome, String> {
    let cfg = mim::Config::from_official(&manifest["config"])?;
    let file = |k: &str| {
        manifest[k]
            .as_str()
            .ok_or(format!("manifest has no `{k}` file"))
    };
    let weights = load_file(dir, file("weights")?)?;
    let io = load_file(dir, file("io")?)?;
    let map = SeededVarMap::new(0);
    let model = GreenMim::new(&cfg, map.var_builder(DType::F32, dev)).map_err(err)?;
    ember_models::load_into(map.vars(), &weights, "official weights").map_err(err)?;
    let tolerance = Tolerance::from_manifest(&manifest["tolerance"]);
    let mut worst = 0f64;
    // The frozen sin-cos table is recomputed, not loaded: it must equal the stored one.
    if let Some(stored) = weights.get("decoder_pos_embed") {
        let ours = model
            .decoder()
            .pos_embed()
            .to_device(&Device::Cpu)
            .map_err(err)?;
        worst = worst.max(tolerance.check("decoder_pos_embed", &ours, stored)?);
    }

    let first_row = |name: &str| -> Result<Vec<f64>, String> {
        get(&io, name)?
            .get(0)
            .and_then(|r| r.to_dtype(DType::F64)?.to_vec1::<f64>())
            .map_err(err)
    };
    let masked = first_row("mask")?;
    let ids: Vec<usize> = first_row("ids_restore")?
        .iter()
        .map(|&v| v as usize)
        .collect();
    let n_masked = masked.iter().filter(|&&m| m > 0.5).count();
    let mask = UnitMask::from_restore(&ids, n_masked)?;
    if mask
        .masked()
        .iter()
        .zip(&masked)
        .any(|(a, &b)| (*a as f64 - b).abs() > 0.0)
    {
        return Err("mask and ids_restore disagree".into());
    }
    let images = get(&io, "input")?.to_device(dev).map_err(err)?;

    let mut taps = Taps::on();
    let pred = model
        .forward_taps(&images, &mask, false, &mut taps)
        .map_err(err)?;
    let mut ours: HashMap<String, Tensor> = taps.into_vec().into_iter().collect();
    let plan = model.plan(&mask, &images).map_err(err)?;
    for (s, stage) in plan.stages.iter().enumerate() {
        let flat: Vec<i64> = stage
            .coords
            .iter()
            .flat_map(|c| [c[0] as i64, c[1] as i64])
            .collect();
        let coords = Tensor::from_vec(flat, (stage.coords.len(), 2), &Device::Cpu).map_err(err)?;
        ours.insert(format!("stage{s}.coords"), coords);
    }
    let unit = cfg.encoder.mask_unit();
    let target = ember_losses::patchify(&images, unit).map_err(err)?;
    let target_norm = ember_losses::normalize_units(&target).map_err(err)?;
    let mask_rows = Tensor::new(mask.masked(), dev)
        .and_then(|m| m.unsqueeze(0)?.repeat((images.dim(0)?, 1)))
        .map_err(err)?;
    let loss = |t: &Tensor| ember_losses::masked_mse(&pred, t, &mask_rows).map_err(err);
    let (norm_loss, raw_loss) = (loss(&target_norm)?, loss(&target)?);
    // `loss` is the configured one; `loss_raw` the raw-pixel one.
    let configured = if cfg.norm_pix_loss {
        norm_loss
    } else {
        raw_loss.clone()
    };
    ours.insert("loss".into(), configured);
    ours.insert("loss_raw".into(), raw_loss);
    ours.insert("target".into(), target);
    ours.insert("target_norm".into(), target_norm);
    ours.insert("pred".into(), pred);

    let inputs = manifest["inputs"]
        .as_object()
        .ok_or("manifest has no inputs")?;
    // `outputs` describes the tensors (some by pattern, `stageS.blockB`); `output_shapes`
    // names each stored one.
    let stored = manifest["output_shapes"]
        .as_object()
        .ok_or("manifest has no output_shapes")?;
    for name in stored.keys() {
        // Inputs echoed among the outputs, and draws the manifest calls informational (the
        // official code's own random noise), are not ours to reproduce.
        let about = manifest["outputs"][name.as_str()].as_str().unwrap_or("");
        let informational = about.contains("informational");
        if inputs.contains_key(name) || informational {
            continue;
        }
        let theirs = get(&io, name)?;
        let mine = ours
            .get(name)
            .ok_or(format!("the model has no output named `{name}`"))?;
        worst = worst.max(tolerance.check(name, mine, theirs)?);
    }
    Ok(Outcome::Ok(worst))
}

/// A JSON array of numbers as `usize`s (-1 as `None`).
fn indices(v: &Value) -> Vec<Option<usize>> {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|x| x.as_i64().and_then(|i| usize::try_from(i).ok()))
                .collect()
        })
        .unwrap_or_default()
}

fn plain(v: &Value) -> Vec<usize> {
    indices(v).into_iter().flatten().collect()
}

fn nested(v: &Value) -> Vec<Vec<usize>> {
    v.as_array()
        .map(|a| a.iter().map(plain).collect())
        .unwrap_or_default()
}

fn nested_opt(v: &Value) -> Vec<Option<usize>> {
    v.as_array()
        .map(|a| a.iter().flat_map(indices).collect())
        .unwrap_or_default()
}

fn same<T: PartialEq + std::fmt::Debug>(what: &str, ours: T, theirs: T) -> Result<(), String> {
    if ours == theirs {
        Ok(())
    } else {
        Err(format!("{what}: ours {ours:?}, official {theirs:?}"))
    }
}

pub fn grouping(manifest: &Value) -> Lines {
    let mut lines = Vec::new();
    let cases = |k: &str| manifest[k].as_array().cloned().unwrap_or_default();
    let knapsack: Vec<_> = cases("knapsack_cases")
        .iter()
        .map(|c| {
            let (best, picked) = mim_grouping::knapsack(
                c["capacity"].as_u64().unwrap_or(0) as usize,
                &plain(&c["weights"]),
            );
            same("best", best, c["best"].as_u64().unwrap_or(0) as usize)?;
            same("selected", picked, plain(&c["selected"]))
        })
        .collect();
    lines.push(summary("knapsack", knapsack));
    let windows: Vec<_> = cases("group_windows_cases")
        .iter()
        .map(|c| {
            let (fill, groups) = mim_grouping::group_windows(
                c["group_size"].as_u64().unwrap_or(0) as usize,
                &plain(&c["num_ele_win"]),
            );
            same("num_ele_group", fill, plain(&c["num_ele_group"]))?;
            same("grouped_idx", groups, nested(&c["grouped_idx"]))
        })
        .collect();
    lines.push(summary("group_windows", windows));
    for case in cases("mask_cases") {
        let name = case["name"].as_str().unwrap_or("?").to_string();
        lines.push((
            format!("masks/{name}"),
            mask_case(&case).map(|()| Outcome::Ok(0.0)),
        ));
    }
    lines
}

/// One line for a list of exact cases: the first failure, or ok.
fn summary(name: &str, results: Vec<Result<(), String>>) -> (String, Result<Outcome, String>) {
    let n = results.len();
    let outcome = match results
        .into_iter()
        .enumerate()
        .find_map(|(i, r)| r.err().map(|e| (i, e)))
    {
        Some((i, e)) => Err(format!("case {i}: {e}")),
        None if n == 0 => Err("no cases".into()),
        None => Ok(Outcome::Ok(0.0)),
    };
    (format!("{name} ({n} cases)"), outcome)
}

fn mask_case(case: &Value) -> Result<(), String> {
    let side = case["unit_grid"].as_u64().ok_or("no unit_grid")? as usize;
    let visible: Vec<usize> = nested(&case["unit_visible"])
        .concat()
        .iter()
        .enumerate()
        .filter(|(_, &v)| v == 1)
        .map(|(u, _)| u)
        .collect();
    let mask = UnitMask::from_visible(side, &visible);
    for stage in case["stages"].as_array().ok_or("no stages")? {
        let s = stage["stage"].as_u64().unwrap_or(0);
        let per_unit = stage["tokens_per_unit_side"]
            .as_u64()
            .ok_or("no tokens_per_unit_side")? as usize;
        let coords = mask.token_coords(per_unit);
        let theirs: Vec<[usize; 2]> = nested(&stage["coords"])
            .iter()
            .map(|c| [c[0], c[1]])
            .collect();
        same(&format!("stage {s} coords"), &coords, &theirs)?;
        for prep in stage["prepare"].as_array().ok_or("no prepare")? {
            let ws = prep["window_size"].as_u64().ok_or("no window_size")? as usize;
            let shift = prep["shift_size"].as_u64().ok_or("no shift_size")? as usize;
            prepare(&coords, ws, shift, prep)
                .map_err(|e| format!("stage {s} shift {shift}: {e}"))?;
        }
    }
    Ok(())
}

fn prepare(coords: &[[usize; 2]], ws: usize, shift: usize, prep: &Value) -> Result<(), String> {
    let layout = WindowLayout::new(coords, ws, shift);
    let mode = match layout.mode {
        Mode::Grouping => "grouping",
        Mode::Masking => "masking",
    };
    same("mode", mode, prep["mode"].as_str().unwrap_or(""))?;
    same(
        "token_window_index",
        layout.token_window.clone(),
        plain(&prep["token_window_index"]),
    )?;
    let windows: Vec<Vec<usize>> = layout.windows.iter().map(|w| w.to_vec()).collect();
    same("windows_yx", windows, nested(&prep["windows_yx"]))?;
    same(
        "exact_win_sz",
        layout.window_sizes.clone(),
        plain(&prep["exact_win_sz"]),
    )?;
    if layout.mode == Mode::Grouping {
        same(
            "group_size",
            layout.group_size,
            prep["group_size"].as_u64().unwrap_or(0) as usize,
        )?;
        same(
            "num_ele_group",
            layout.group_fill.clone(),
            plain(&prep["num_ele_group"]),
        )?;
        same(
            "grouped_idx",
            layout.groups.clone(),
            nested(&prep["grouped_idx"]),
        )?;
        same(
            "groups_tokens_canonical",
            layout.slots.clone(),
            nested_opt(&prep["groups_tokens_canonical"]),
        )?;
        same(
            "groups_slot_window",
            layout.slot_windows(),
            nested_opt(&prep["groups_slot_window"]),
        )?;
        // The official slot order: the same tokens per (group, window), in another order.
        let official = nested_opt(&prep["idx_shuffle_official"]);
        let per_window = |slots: &[Option<usize>]| -> BTreeSet<(usize, usize, Vec<usize>)> {
            let gs = layout.group_size;
            let mut sets: HashMap<(usize, usize), Vec<usize>> = HashMap::new();
            for (i, t) in slots.iter().enumerate() {
                if let Some(t) = t {
                    sets.entry((i / gs, layout.token_window[*t]))
                        .or_default()
                        .push(*t);
                }
            }
            sets.into_iter()
                .map(|((g, w), mut ts)| {
                    ts.sort_unstable();
                    (g, w, ts)
                })
                .collect()
        };
        same(
            "idx_shuffle_official as sets",
            per_window(&layout.slots),
            per_window(&official),
        )?;
        check_pairs(coords, &layout, &official, layout.group_size, prep)?;
    } else {
        let raster: Vec<Option<usize>> = (0..coords.len()).map(Some).collect();
        check_pairs(coords, &layout, &raster, coords.len(), prep)?;
    }
    Ok(())
}

/// The official attention mask and relative position index (where the fixture holds them),
/// pair by pair in the official slot order, against ours for the same tokens.
fn check_pairs(
    coords: &[[usize; 2]],
    layout: &WindowLayout,
    slots: &[Option<usize>],
    gs: usize,
    prep: &Value,
) -> Result<(), String> {
    let flat = |v: &Value| -> Vec<f64> {
        fn walk(v: &Value, out: &mut Vec<f64>) {
            match v {
                Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
                other => out.extend(other.as_f64()),
            }
        }
        let mut out = Vec::new();
        walk(v, &mut out);
        out
    };
    let mask = flat(&prep["attn_mask_official"]);
    let rel = flat(&prep["rel_pos_idx_official"]);
    if mask.is_empty() {
        return Ok(());
    }
    let mut k = 0;
    for group in slots.chunks(gs) {
        for qi in group {
            for kj in group {
                let row = match (qi, kj) {
                    (Some(i), Some(j)) => layout.bias_row(coords, *i, *j),
                    _ => None,
                };
                let want_mask = if row.is_some() {
                    0.0
                } else {
                    ember_models::swin::layout::MASKED as f64
                };
                same(
                    "attention mask",
                    want_mask,
                    *mask.get(k).ok_or("short attn_mask_official")?,
                )?;
                if !rel.is_empty() {
                    same("relative position index", row.unwrap_or(0) as f64, rel[k])?;
                }
                k += 1;
            }
        }
    }
    same("attention mask entries", k, mask.len())
}
