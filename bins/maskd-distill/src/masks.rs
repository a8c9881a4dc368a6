//! `maskd-distill masks`: what the teacher attends to. One row per test image: the image
//! with its labels coloured in, then each token's mask over it (blue off, yellow on), with
//! the mean pairwise Dice between the masks (lower: more distinct).

use std::path::PathBuf;

use candle_core::{DType, Device};
use clap::Args;
use ember_core::mosaic::{write_mosaic, Tile};
use ember_core::{EmberError, Result, SeededVarMap};
use ember_losses::MaskModule;
use serde_json::{json, Value};

use crate::teacher_data::{report, TeacherData};
use crate::tokens::{load_tokens, TOKEN_PREFIX};

#[derive(Debug, Clone, Args)]
pub struct MasksArgs {
    /// The teacher the tokens were learnt on.
    #[arg(long, value_name = "CKPT")]
    pub teacher: String,
    /// Tokens from stage 1 (`tokens.safetensors`); without them, tokens freshly drawn from
    /// --seed as stage 1 starts (the masks before training).
    #[arg(long, value_name = "FILE")]
    pub tokens: Option<PathBuf>,
    /// Without --tokens: how many to draw.
    #[arg(long, default_value_t = 8)]
    pub num_tokens: usize,
    #[arg(long, default_value = "fashion-seg")]
    pub data: String,
    /// Test images shown (one row each).
    #[arg(long, default_value_t = 6)]
    pub count: usize,
    /// Enlargement of each pixel.
    #[arg(long, default_value_t = 3)]
    pub scale: usize,
    #[arg(long, short, default_value = "masks.png")]
    pub out: PathBuf,
}

pub fn run(args: &MasksArgs, seed: u64, device: &Device) -> Result<Value> {
    if args.count == 0 || args.scale == 0 {
        return Err(EmberError::bad_input(
            "--count and --scale must be at least 1",
        ));
    }
    let teacher = TeacherData::open(&args.teacher, &args.data, device)?;
    let classes = teacher.classes();
    let module = match &args.tokens {
        Some(path) => load_tokens(path, classes, device)?,
        None => {
            if args.num_tokens < 2 {
                return Err(EmberError::bad_input("--num-tokens must be at least 2"));
            }
            let vars = SeededVarMap::new(seed);
            MaskModule::new(
                vars.var_builder(DType::F32, device).pp(TOKEN_PREFIX),
                classes,
                args.num_tokens,
                false,
            )?
        }
    };
    let loader = teacher.test_loader(args.count, args.count, 0)?;
    let mut rows = Vec::new();
    for batch in loader.epoch(0, 0) {
        let batch = batch?;
        let (x, _) = batch.to_tensors(device)?;
        let masks = module.masks(&teacher.logits(&x)?)?;
        let (n, t, mh, mw) = masks.dims4()?;
        let masks: Vec<f32> = masks.flatten_all()?.to_vec1()?;
        let [_, c, h, w] = batch.dims;
        for i in 0..n {
            let grey = display_grey(
                &batch.images[i * c * h * w..(i + 1) * c * h * w],
                c,
                &teacher,
            );
            let labels = &batch.maps[i * h * w..(i + 1) * h * w];
            let mut row = vec![Tile::overlay(&grey, (h, w), labels)];
            for k in 0..t {
                let m = &masks[(i * t + k) * mh * mw..(i * t + k + 1) * mh * mw];
                row.push(Tile::heat(&grey, (h, w), &nearest(m, (mh, mw), (h, w))));
            }
            rows.push(row);
        }
    }
    write_mosaic(&args.out, &rows, args.scale, 2)?;
    let r = report(&teacher, &module, &loader, device)?;
    Ok(json!({
        "command": "maskd-distill masks",
        "teacher": teacher.teacher.spec,
        "tokens": args.tokens.as_ref().map(|p| p.display().to_string()),
        "images": rows.len(),
        "mean_pairwise_dice": r.dice,
        "out": args.out.display().to_string(),
    }))
}

/// The normalised image back in [0, 1], averaged over channels.
fn display_grey(values: &[f32], c: usize, teacher: &TeacherData) -> Vec<f32> {
    let plane = values.len() / c;
    (0..plane)
        .map(|p| {
            (0..c)
                .map(|k| values[k * plane + p] * teacher.prep.std[k] + teacher.prep.mean[k])
                .sum::<f32>()
                / c as f32
        })
        .collect()
}

/// A `(h, w)` map enlarged to `(oh, ow)` by repeating pixels.
fn nearest(map: &[f32], (h, w): (usize, usize), (oh, ow): (usize, usize)) -> Vec<f32> {
    let mut out = Vec::with_capacity(oh * ow);
    for y in 0..oh {
        for x in 0..ow {
            out.push(map[(y * h / oh) * w + x * w / ow]);
        }
    }
    out
}
