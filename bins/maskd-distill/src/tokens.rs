//! Stage 1: the receptive tokens learnt on the frozen teacher. Each step masks the teacher's
//! logits with every token (`sum_t M_t * logits`), and the tokens alone are trained so the
//! teacher still segments from the masked logits (cross-entropy) while the masks differ
//! (Dice), with the official seg recipe: SGD lr 0.1, momentum 0.9, weight decay 1e-3, poly
//! 0.9. The teacher runs in eval mode (spec 2.6.8: the official script's train-mode BN is a
//! quirk not copied). The run resumes from its last checkpoint; the tokens are written under
//! the official name `mask_module.mask_token`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{DType, Device};
use clap::Args;
use ember_cli::run_setup;
use ember_core::{Checkpoint, CheckpointMeta, EmberError, Result, RunDir, SeededVarMap};
use ember_data::{Loader, LoaderConfig};
use ember_losses::{dice_diversity, MaskModule};
use ember_train::optim::{default_groups, Method, Optimizer};
use ember_train::pixel_rows;
use ember_train::progress::Progress;
use serde_json::{json, Value};

use crate::teacher_data::{report, MaskReport, TeacherData};

/// The official name of the segmentation tokens.
pub const TOKEN_PREFIX: &str = "mask_module";
const STATE_PREFIX: &str = "@train/optim/";

#[derive(Debug, Clone, Args)]
pub struct TokensArgs {
    /// The teacher: a segmentation checkpoint (`ember train --task seg`), a path or hf://...
    #[arg(
        long,
        value_name = "CKPT",
        required_unless_present = "resume",
        default_value = ""
    )]
    pub teacher: String,
    /// Data labelled per pixel, the teacher's classes (see `ember train --help`).
    #[arg(long, default_value = "fashion-seg")]
    pub data: String,
    /// Receptive tokens (the official seg value: 8).
    #[arg(long, default_value_t = 8)]
    pub tokens: usize,
    /// Optimizer steps (the official run: 10k at batch 16 on Cityscapes).
    #[arg(long, default_value_t = 2000)]
    pub iterations: usize,
    #[arg(long, default_value_t = 16)]
    pub batch_size: usize,
    #[arg(long, default_value_t = 0.1)]
    pub lr: f64,
    #[arg(long, default_value_t = 0.9)]
    pub momentum: f64,
    #[arg(long, default_value_t = 1e-3)]
    pub weight_decay: f64,
    /// The poly schedule's power: lr * (1 - step / iterations)^power.
    #[arg(long, default_value_t = 0.9)]
    pub poly_power: f64,
    /// Test images the masks are assessed on before and after (Dice, mIoU).
    #[arg(long, default_value_t = 512)]
    pub eval_images: usize,
    /// Threads preparing batches.
    #[arg(long, default_value_t = 2)]
    pub workers: usize,
    /// Run directory (tokens.safetensors, last.safetensors, metrics.jsonl, summary.json)
    /// [default: runs/maskd-tokens-<unix time>].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Continue the run in DIR from its last checkpoint, with the settings it started with.
    #[arg(long, value_name = "DIR")]
    pub resume: Option<PathBuf>,
    #[arg(long)]
    pub quiet: bool,
}

impl TokensArgs {
    fn check(&self) -> Result<()> {
        if self.tokens < 2 || self.iterations == 0 || self.batch_size == 0 {
            return Err(EmberError::bad_input(
                "--tokens must be at least 2 (the Dice loss compares pairs), --iterations and --batch-size at least 1",
            ));
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return Err(EmberError::bad_input(format!(
                "--lr must be positive, got {}",
                self.lr
            )));
        }
        Ok(())
    }
}

/// Where stage 1 stands; saved in `last.safetensors` as `ember.tokens_state`.
struct Position {
    step: usize,
    before: Option<MaskReport>,
}

pub fn run(args: &TokensArgs, argv: Vec<String>, seed: u64, device: &Device) -> Result<Value> {
    args.check()?;
    let teacher = TeacherData::open(&args.teacher, &args.data, device)?;
    let classes = teacher.classes();
    let vars = SeededVarMap::new(seed);
    let module = MaskModule::new(
        vars.var_builder(DType::F32, device).pp(TOKEN_PREFIX),
        classes,
        args.tokens,
        false,
    )?;
    let params = ember_train::trainer::parameters(&vars);
    let mut opt = Optimizer::new(
        Method::Sgd {
            momentum: args.momentum,
            nesterov: false,
        },
        default_groups(params, args.weight_decay, &[]),
        args.lr,
    );
    let train = Loader::new(
        teacher.data.train.clone(),
        teacher.prep.eval_pipeline(),
        LoaderConfig {
            batch_size: args.batch_size,
            shuffle: true,
            drop_last: true,
            workers: args.workers,
            seed,
            shard: ember_data::Shard::WHOLE,
        },
    )?;
    let probe = teacher.test_loader(args.eval_images, args.batch_size.max(32), args.workers)?;

    let resumed = args.resume.as_deref().map(RunDir::open).transpose()?;
    let (run, last) =
        run_setup::open_run(resumed, args.out.clone(), "maskd-tokens", &argv, device)?;
    let mut position = match &last {
        Some(ckpt) => restore(ckpt, &run, &vars, &mut opt)?,
        None => Position {
            step: 0,
            before: None,
        },
    };
    let before = match position.before {
        Some(r) => r,
        None => report(&teacher, &module, &probe, device)?,
    };
    position.before = Some(before);
    if !args.quiet {
        eprintln!(
            "tokens: teacher mIoU {:.2}%, masked {:.2}%, mean pairwise Dice {:.4} before stage 1",
            before.teacher_miou, before.masked_miou, before.dice
        );
    }

    let per_epoch = train.batches_per_epoch();
    let progress = Progress::new("tokens".into(), args.iterations, position.step, args.quiet);
    let (mut ce_sum, mut dice_sum, mut count) = (0f64, 0f64, 0usize);
    let mut last_save = Instant::now();
    while position.step < args.iterations {
        let (epoch, start) = (position.step / per_epoch, position.step % per_epoch);
        for batch in train.epoch(epoch, start) {
            if position.step >= args.iterations {
                break;
            }
            let batch = batch?;
            let (x, y) = batch.to_tensors(device)?;
            let logits = teacher.logits(&x)?;
            let masked = module.masked(&logits)?;
            let (rows, targets) = pixel_rows(&masked.output, &y)?;
            let ce = ember_losses::cross_entropy(&rows, &targets, 0.0)?;
            let dice = dice_diversity(&masked.masks)?;
            let loss = (&ce + &dice)?;
            let value = loss.to_scalar::<f32>()? as f64;
            if !value.is_finite() {
                return Err(EmberError::Runtime(format!(
                    "stage 1 diverged at step {} (loss {value}); the last good checkpoint is {}",
                    position.step + 1,
                    run.file("last.safetensors").display()
                )));
            }
            let progress_fraction = position.step as f64 / args.iterations as f64;
            opt.set_lr(args.lr * (1.0 - progress_fraction).powf(args.poly_power));
            if let Some(grads) = opt.backward(&loss)? {
                opt.step(&grads)?;
            }
            position.step += 1;
            ce_sum += ce.to_scalar::<f32>()? as f64;
            dice_sum += dice.to_scalar::<f32>()? as f64;
            count += 1;
            progress.update(
                position.step,
                &format!(
                    "ce {:.4} dice {:.4}",
                    ce_sum / count as f64,
                    dice_sum / count as f64
                ),
            );
            let log_now = position.step % 50 == 0 || position.step == args.iterations;
            if log_now {
                run.append_metrics(&json!({
                    "step": position.step,
                    "ce": ce_sum / count as f64,
                    "dice": dice_sum / count as f64,
                    "lr": opt.lr(),
                }))?;
                (ce_sum, dice_sum, count) = (0.0, 0.0, 0);
            }
            if log_now && last_save.elapsed().as_secs() >= 30 {
                save(&run, &vars, &opt, &position, &teacher, args)?;
                last_save = Instant::now();
            }
        }
    }
    progress.finish();
    save(&run, &vars, &opt, &position, &teacher, args)?;
    let after = report(&teacher, &module, &probe, device)?;
    let tokens_file = run.file("tokens.safetensors");
    save_tokens(&tokens_file, &vars, &teacher, args, &before, &after)?;
    let summary = json!({
        "command": "maskd-distill tokens",
        "teacher": teacher.teacher.spec,
        "tokens": args.tokens,
        "iterations": args.iterations,
        "teacher_miou": after.teacher_miou,
        "masked_miou_before": before.masked_miou,
        "masked_miou_after": after.masked_miou,
        "dice_before": before.dice,
        "dice_after": after.dice,
        "eval_images": probe.dataset().len(),
        "run_dir": run.root().display().to_string(),
        "tokens_file": tokens_file.display().to_string(),
    });
    run.write_json("summary.json", &summary)?;
    Ok(summary)
}

fn meta(teacher: &TeacherData, args: &TokensArgs) -> CheckpointMeta {
    CheckpointMeta::new(
        "maskd_tokens",
        json!({ "tokens": args.tokens, "channels": teacher.classes(), "teacher": teacher.teacher.spec }),
        "maskd-tokens",
        teacher.data.classes.clone(),
    )
}

fn save(
    run: &RunDir,
    vars: &SeededVarMap,
    opt: &Optimizer,
    position: &Position,
    teacher: &TeacherData,
    args: &TokensArgs,
) -> Result<()> {
    let mut meta = meta(teacher, args);
    let before = position
        .before
        .map(|b| json!([b.dice, b.teacher_miou, b.masked_miou]));
    meta.extra.insert(
        "tokens_state".into(),
        json!({ "step": position.step, "before": before }).to_string(),
    );
    let mut tensors = vars.tensors();
    tensors.extend(opt.state_tensors(STATE_PREFIX));
    Checkpoint::save(
        &run.file("last.safetensors"),
        &meta,
        tensors.iter().map(|(k, t)| (k.as_str(), t)),
    )
}

fn restore(
    ckpt: &Checkpoint,
    run: &RunDir,
    vars: &SeededVarMap,
    opt: &mut Optimizer,
) -> Result<Position> {
    let file = run.file("last.safetensors");
    let bad = |e: &str| EmberError::bad_input(format!("{}: {e}", file.display()));
    let state: Value = ckpt
        .meta
        .extra
        .get("tokens_state")
        .and_then(|s| serde_json::from_str(s).ok())
        .ok_or_else(|| bad("no ember.tokens_state: not a stage-1 checkpoint"))?;
    let step = state["step"].as_u64().ok_or_else(|| bad("no step"))? as usize;
    let before = state["before"].as_array().and_then(|v| {
        Some(MaskReport {
            dice: v.first()?.as_f64()?,
            teacher_miou: v.get(1)?.as_f64()?,
            masked_miou: v.get(2)?.as_f64()?,
        })
    });
    let weights = ckpt
        .model_tensors()
        .map(|(k, t)| (k.clone(), t.clone()))
        .collect();
    ember_models::load_into(vars.vars(), &weights, "the stage-1 checkpoint")?;
    opt.load_state(STATE_PREFIX, &ckpt.tensors, step as u64)
        .map_err(|e| bad(&e.to_string()))?;
    Ok(Position { step, before })
}

fn save_tokens(
    path: &Path,
    vars: &SeededVarMap,
    teacher: &TeacherData,
    args: &TokensArgs,
    before: &MaskReport,
    after: &MaskReport,
) -> Result<()> {
    let mut meta = meta(teacher, args);
    meta.metrics = json!({
        "dice_before": before.dice,
        "dice_after": after.dice,
        "masked_miou_before": before.masked_miou,
        "masked_miou_after": after.masked_miou,
        "teacher_miou": after.teacher_miou,
    });
    let tensors = vars.tensors();
    Checkpoint::save(path, &meta, tensors.iter().map(|(k, t)| (k.as_str(), t)))
}

/// The tokens of a stage-1 file (ours, or an official checkpoint converted to safetensors
/// with the key `mask_module.mask_token`), as a frozen mask module.
pub fn load_tokens(path: &Path, classes: usize, device: &Device) -> Result<MaskModule> {
    let tensors = candle_core::safetensors::load(path, device)
        .map_err(|e| EmberError::bad_input(format!("--tokens {}: {e}", path.display())))?;
    let key = format!("{TOKEN_PREFIX}.mask_token");
    let token = tensors.get(&key).ok_or_else(|| {
        EmberError::bad_input(format!("--tokens {}: no `{key}` tensor", path.display()))
    })?;
    let dims = token.dims().to_vec();
    if dims.len() != 2 || dims[1] != classes {
        return Err(EmberError::bad_input(format!(
            "--tokens {}: tokens {dims:?} do not fit logits of {classes} classes",
            path.display()
        )));
    }
    let vb = candle_nn::VarBuilder::from_tensors(
        [("mask_token".to_string(), token.to_dtype(DType::F32)?)].into(),
        DType::F32,
        device,
    );
    Ok(MaskModule::new(vb, classes, dims[0], false)?)
}
