//! The supervised training loop every tool builds on: per-step learning rate, forward,
//! loss, backward, clipping, optimizer step, EMA; evaluation after each epoch; a metrics
//! record, `curves.png`, and atomic `last` / `best` checkpoints; mid-epoch checkpoints on a
//! timer; exact resumption from `last.safetensors`; and a NaN/inf guard that stops the run
//! with the last good checkpoint intact.

use std::collections::HashMap;
use std::time::Instant;

use candle_core::{DType, Device, Tensor, Var};
use ember_core::checkpoint::is_buffer;
use ember_core::plot::{Panel, Series};
use ember_core::{Checkpoint, CheckpointMeta, EmberError, EmberRng, Result, RunDir, SeededVarMap};
use ember_data::Loader;
use ember_models::Classifier;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::clip::clip_grad_norm;
use crate::ema::{Ema, Saved};
use crate::evaluate::{evaluate, EvalResult};
use crate::metrics::topk_correct;
use crate::mix::mix_batch;
use crate::objective::{CrossEntropy, Objective, StepInput};
use crate::optim::{default_groups, Optimizer};
use crate::progress::Progress;
use crate::segmentation::pixel_topk_correct;
use crate::settings::TrainSettings;
use crate::structure::{RunContext, StructureHook};
use crate::totals::{checkpoint_due, diverged, kept_history, next_batch, EpochTotals, StepTally};

// Training state rides in `last.safetensors` under the checkpoint's state prefix.
pub(crate) const OPTIM_PREFIX: &str = "@train/optim/";
const EMA_PREFIX: &str = "@train/ema/";
/// The EMA's update count (metadata); checkpoints without it hold an init-started average.
const EMA_UPDATES: &str = "ema_updates";
/// Metadata key (under `ember.`) of a structure method's state in `last.safetensors`.
const STRUCTURE_STATE: &str = "structure_state";

/// Where a run stands; saved in `last.safetensors` metadata as `ember.train_state`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// The epoch in progress (0-based).
    pub epoch: usize,
    /// The next batch of that epoch.
    pub batch: usize,
    /// Optimizer steps taken.
    pub step: usize,
    /// The best epoch's headline score: top-1, or mean IoU for segmentation.
    pub best_top1: Option<f64>,
    pub best_epoch: Option<usize>,
    /// Running sums of the epoch in progress.
    pub totals: EpochTotals,
}

/// What a finished run reports (also written to `summary.json`).
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub epochs: usize,
    pub final_eval: EvalResult,
    /// What `best_top1` measures: `top1`, or `miou` for segmentation.
    pub best_metric: &'static str,
    /// The best epoch's headline score (percent).
    pub best_top1: f64,
    pub best_epoch: usize,
    pub train_seconds: f64,
    pub run_dir: String,
    pub best_checkpoint: String,
}

pub struct Trainer<'a> {
    pub model: &'a dyn Classifier,
    pub vars: &'a SeededVarMap,
    pub train: Loader,
    pub eval: Loader,
    pub settings: TrainSettings,
    /// What each step minimises; `None` is the cross-entropy of the settings.
    pub objective: Option<&'a dyn Objective>,
    /// A method that changes the model's structure as it trains.
    pub structure: Option<&'a dyn StructureHook>,
    pub run: RunDir,
    /// arch, config, task and labels for the checkpoints.
    pub meta: CheckpointMeta,
    pub device: Device,
    pub dtype: DType,
    /// Suppresses progress output.
    pub quiet: bool,
}

/// Trainable parameters: every variable but BN running statistics (buffers).
pub fn parameters(vars: &SeededVarMap) -> Vec<(String, Var)> {
    vars.named()
        .into_iter()
        .filter(|(k, _)| !is_buffer(k))
        .collect()
}

impl Trainer<'_> {
    /// Trains from the start, or from `resume` (the run's `last.safetensors`).
    pub fn fit(&self, resume: Option<&Checkpoint>) -> Result<Summary> {
        let s = &self.settings;
        let steps_per_epoch = self.train.batches_per_epoch();
        let schedule = s.schedule(steps_per_epoch);
        let mix = s.mix();
        let classes = self.meta.labels.len();
        let cross_entropy = CrossEntropy {
            smoothing: s.label_smoothing,
        };
        let objective = self.objective.unwrap_or(&cross_entropy);
        let groups = || {
            default_groups(
                parameters(self.vars),
                s.weight_decay,
                self.model.no_weight_decay(),
            )
        };
        let mut opt = Optimizer::new(s.method(), groups(), s.lr);
        if mix.enabled() && self.train.dataset().dense() {
            return Err(EmberError::bad_input(crate::mix::NOT_ON_DENSE));
        }
        if self.structure.is_some() && s.ema_decay.is_some() {
            return Err(EmberError::bad_input(
                "--ema cannot follow a model whose structure changes while it trains",
            ));
        }
        let mut ema = match s.ema_decay {
            Some(d) => Some(Ema::new(self.vars.named(), d)?),
            None => None,
        };
        let context = RunContext {
            model: self.model,
            vars: self.vars,
            train: &self.train,
            device: &self.device,
            dtype: self.dtype,
        };
        let mut state = TrainState::default();
        let mut history = Vec::new();
        if let Some(ckpt) = resume {
            state = self.restore(ckpt, &mut opt, ema.as_mut())?;
            history = kept_history(&self.run, state.epoch)?;
        }
        crate::dist::sync_all(self.vars)?;
        let quiet = self.quiet || !ember_core::dist::world().is_primary();
        let mut last_eval = None;
        for epoch in state.epoch..s.epochs {
            let resuming_mid_epoch = state.batch > 0;
            if !resuming_mid_epoch {
                state.totals = EpochTotals::default();
            }
            let label = format!("epoch {}/{}", epoch + 1, s.epochs);
            let progress = Progress::new(label, steps_per_epoch, state.batch, quiet);
            let mut last_save = Instant::now();
            let mut batches = self.train.epoch(epoch, state.batch);
            let mut tick = Instant::now();
            loop {
                let Some(batch) = next_batch(&mut batches, &mut state.totals) else {
                    break;
                };
                let mut batch = batch?;
                let n = batch.len();
                let soft = if mix.enabled() {
                    let mut rng = EmberRng::for_name(s.seed, &format!("mix/{}", state.step));
                    Some(mix_batch(&mut batch, classes, &mix, &mut rng))
                } else {
                    None
                };
                let (x, y) = batch.to_tensors(&self.device)?;
                let lr = schedule.lr(state.step);
                opt.set_lr(lr);
                // Drop path and dropout draw from (seed, step), so resuming redraws the
                // same masks.
                let mut noise = EmberRng::for_name(
                    s.seed,
                    &crate::dist::rank_stream(format!("noise/{}", state.step)),
                );
                self.model.reseed(noise.next_u64());
                let x = x.to_dtype(self.dtype)?;
                let logits = self.model.forward_t(&x, true)?;
                let soft_targets = soft
                    .as_ref()
                    .map(|t| Tensor::from_slice(t, (n, classes), &self.device))
                    .transpose()?;
                let step = StepInput {
                    images: &x,
                    logits: &logits,
                    labels: &y,
                    soft_targets: soft_targets.as_ref(),
                    indices: &batch.indices,
                };
                let out = objective.loss(&step)?;
                let loss = out.total;
                let mut tally = StepTally::new(
                    n,
                    loss.to_dtype(DType::F64)?.to_scalar::<f64>()?,
                    &out.parts,
                )?;
                if logits.rank() == 4 {
                    tally.correct = pixel_topk_correct(&logits, &y, [1, 1])?[0];
                    tally.pixels = y.elem_count();
                } else if soft.is_none() {
                    tally.correct = topk_correct(&logits, &batch.labels, [1, 1])?[0];
                }
                // The whole batch's figures on every rank: the records count every image,
                // and all ranks stop together on a non-finite loss.
                let tally = tally.over_ranks(&self.device)?;
                let loss_value = tally.loss();
                if !loss_value.is_finite() {
                    progress.finish();
                    return Err(diverged(
                        &self.run,
                        "training",
                        epoch,
                        state.batch,
                        loss_value,
                    ));
                }
                // None: f16 gradients overflowed, the step is skipped (as GradScaler does).
                if let Some(mut grads) = opt.backward(&loss)? {
                    if let Some(hook) = self.structure {
                        hook.after_backward(&context, &grads)?;
                    }
                    if let Some(max) = s.clip_grad {
                        let params: Vec<&Var> = opt.params().map(|(_, v)| v).collect();
                        clip_grad_norm(&mut grads, params.into_iter(), max)?;
                    }
                    opt.step(&grads)?;
                    if let Some(e) = ema.as_mut() {
                        e.update()?;
                    }
                }
                state.totals.add_tally(&tally, &mut tick);
                state.step += 1;
                state.batch += 1;
                progress.update(state.batch, &state.totals.progress_message(lr));
                if checkpoint_due(s, last_save, state.step, state.batch, steps_per_epoch) {
                    self.save_last(&state, &opt, ema.as_ref(), &Value::Null, &context)?;
                    last_save = Instant::now();
                }
            }
            drop(batches);
            progress.finish();

            if let Some(e) = ema.as_mut() {
                e.swap()?;
            }
            // After the swap: every rank evaluates its batches with rank 0's statistics,
            // of the averaged model too (each rank averages its own).
            crate::dist::sync_buffers(self.vars)?;
            let eval = evaluate(self.model, &self.eval, &self.device, self.dtype)?;
            let improved = state.best_top1.is_none_or(|b| eval.headline() > b);
            if improved {
                state.best_top1 = Some(eval.headline());
                state.best_epoch = Some(epoch + 1);
            }
            let t = &state.totals;
            let mut record = json!({
                "epoch": epoch + 1,
                "train_top1": if mix.enabled() { Value::Null } else { json!(t.accuracy()) },
                "test_loss": eval.loss,
                "test_top1": eval.top1,
                "test_top5": eval.top5,
                "lr": opt.lr(),
            });
            if let Some(seg) = &eval.segmentation {
                record["test_miou"] = json!(seg.miou);
                record["test_class_iou"] = json!(seg.class_iou);
            }
            record
                .as_object_mut()
                .expect("a JSON object")
                .extend(t.record());
            if improved {
                self.save_model("best.safetensors", &record, &context)?;
            }
            if let Some(e) = ema.as_mut() {
                e.swap()?;
            }
            // The structure changes after the evaluation and the best checkpoint, so both
            // describe the model that was trained this epoch.
            if let Some(hook) = self.structure {
                let change = hook.after_epoch(&context, epoch)?;
                if change.changed {
                    opt.regroup(groups());
                }
                for (k, v) in change.record {
                    record[k] = v;
                }
            }
            if !quiet {
                let scores = match &eval.segmentation {
                    Some(seg) => format!("mIoU {:.2}%, pixel accuracy {:.2}%", seg.miou, eval.top1),
                    None => format!("top-1 {:.2}%, top-5 {:.2}%", eval.top1, eval.top5),
                };
                eprintln!(
                    "epoch {}/{}: train loss {:.4}, test loss {:.4}, {scores} ({:.0} img/s)",
                    epoch + 1,
                    s.epochs,
                    record["train_loss"].as_f64().unwrap_or(0.0),
                    eval.loss,
                    record["images_per_s"].as_f64().unwrap_or(0.0)
                );
            }
            // Metrics first, then the checkpoint that moves past this epoch: a kill between
            // the two reruns the epoch's end and replaces the record, never leaves a gap.
            self.run.append_metrics(&record)?;
            history.push(record.clone());
            state.epoch = epoch + 1;
            state.batch = 0;
            state.totals = EpochTotals::default();
            self.save_last(&state, &opt, ema.as_ref(), &record, &context)?;
            self.draw(&history)?;
            last_eval = Some(eval);
        }
        let final_eval = match last_eval {
            Some(e) => e,
            None => {
                if let Some(e) = ema.as_mut() {
                    e.swap()?;
                }
                let r = evaluate(self.model, &self.eval, &self.device, self.dtype);
                if let Some(e) = ema.as_mut() {
                    e.swap()?;
                }
                r?
            }
        };
        let summary = Summary {
            epochs: s.epochs,
            best_metric: final_eval.headline_name(),
            best_top1: state.best_top1.unwrap_or(final_eval.headline()),
            best_epoch: state.best_epoch.unwrap_or(s.epochs),
            train_seconds: history
                .iter()
                .filter_map(|r| r["epoch_seconds"].as_f64())
                .sum::<f64>(),
            run_dir: self.run.root().display().to_string(),
            best_checkpoint: self.run.file("best.safetensors").display().to_string(),
            final_eval,
        };
        self.run.write_json(
            "summary.json",
            &serde_json::to_value(&summary).expect("summaries serialise"),
        )?;
        Ok(summary)
    }

    fn restore(
        &self,
        ckpt: &Checkpoint,
        opt: &mut Optimizer,
        ema: Option<&mut Ema>,
    ) -> Result<TrainState> {
        let state = restore_run(ckpt, &self.run, self.vars, opt)?;
        let bad = |e: String| {
            EmberError::bad_input(format!(
                "{}: {e}",
                self.run.file("last.safetensors").display()
            ))
        };
        if let Some(ema) = ema {
            let saved = match ckpt.meta.extra.get(EMA_UPDATES) {
                Some(n) => Saved::Corrected(
                    n.parse()
                        .map_err(|_| bad(format!("bad ember.{EMA_UPDATES} {n:?}")))?,
                ),
                // Every step updated the average then, except skipped f16 steps, which
                // this count includes: the conversion is then off by their share.
                None => Saved::InitStarted(state.step as u64),
            };
            ema.load(saved, |name| {
                ckpt.tensors.get(&format!("{EMA_PREFIX}{name}")).cloned()
            })
            .map_err(|e| bad(e.to_string()))?;
        }
        if let (Some(hook), Some(saved)) = (self.structure, ckpt.meta.extra.get(STRUCTURE_STATE)) {
            let saved: Value = serde_json::from_str(saved)
                .map_err(|e| bad(format!("bad ember.{STRUCTURE_STATE} ({e})")))?;
            hook.restore(&saved)?;
        }
        Ok(state)
    }

    fn model_tensors(&self) -> Vec<(String, Tensor)> {
        self.vars.tensors()
    }

    /// The checkpoint metadata, with the model config as the structure now stands.
    fn current_meta(&self, context: &RunContext) -> CheckpointMeta {
        let mut meta = self.meta.clone();
        if let Some(hook) = self.structure {
            meta.config = hook.config(context, &self.meta.config);
            meta.extra.insert(
                STRUCTURE_STATE.into(),
                serde_json::to_string(&hook.state()).expect("state serialises"),
            );
        }
        meta
    }

    fn save_model(&self, file: &str, metrics: &Value, context: &RunContext) -> Result<()> {
        let mut meta = self.current_meta(context);
        meta.extra.remove(STRUCTURE_STATE);
        meta.metrics = metrics.clone();
        let tensors = self.model_tensors();
        self.run
            .save_checkpoint(file, &meta, tensors.iter().map(|(k, t)| (k.as_str(), t)))
    }

    fn save_last(
        &self,
        state: &TrainState,
        opt: &Optimizer,
        ema: Option<&Ema>,
        metrics: &Value,
        context: &RunContext,
    ) -> Result<()> {
        let mut meta = self.current_meta(context);
        meta.metrics = metrics.clone();
        meta.extra.insert(
            "train_state".into(),
            serde_json::to_string(state).expect("state serialises"),
        );
        let mut tensors = self.model_tensors();
        tensors.extend(opt.state_tensors(OPTIM_PREFIX));
        if let Some(e) = ema {
            meta.extra
                .insert(EMA_UPDATES.into(), e.updates().to_string());
            tensors.extend(
                e.named()
                    .map(|(n, t)| (format!("{EMA_PREFIX}{n}"), t.clone())),
            );
        }
        self.run.save_checkpoint(
            "last.safetensors",
            &meta,
            tensors.iter().map(|(k, t)| (k.as_str(), t)),
        )
    }

    fn draw(&self, history: &[Value]) -> Result<()> {
        let series = |name: &str, key: &str| series(history, name, key);
        // The training objective, its parts (when the method reports them), and the test
        // cross-entropy.
        let mut losses = train_losses(history);
        losses.push(series("test (cross-entropy)", "test_loss"));
        let panels = [
            Panel {
                title: "loss".into(),
                y_label: "loss".into(),
                series: losses,
            },
            Panel {
                title: "accuracy".into(),
                y_label: "top-1 %".into(),
                series: vec![series("train", "train_top1"), series("test", "test_top1")],
            },
        ];
        self.run.draw_curves("curves.png", &panels)
    }
}

/// The metric `key` of every epoch record, as a curve named `name`.
pub(crate) fn series(history: &[Value], name: &str, key: &str) -> Series {
    Series {
        name: name.into(),
        points: history
            .iter()
            .filter_map(|r| Some((r["epoch"].as_f64()?, r[key].as_f64()?)))
            .collect(),
    }
}

/// The training loss and every part of it the records hold (`train_<part>`).
pub(crate) fn train_losses(history: &[Value]) -> Vec<Series> {
    let mut losses = vec![series(history, "train", "train_loss")];
    if let Some(last) = history.last().and_then(Value::as_object) {
        for key in last.keys() {
            if let Some(part) = key.strip_prefix("train_") {
                if part != "loss" && part != "top1" {
                    losses.push(series(history, &format!("train {part}"), key));
                }
            }
        }
    }
    losses
}

/// What every resumable loop restores from its `last.safetensors`: the position
/// (`ember.train_state`), the variables and the optimizer state; errors name the file.
pub(crate) fn restore_run(
    ckpt: &Checkpoint,
    run: &RunDir,
    vars: &SeededVarMap,
    opt: &mut Optimizer,
) -> Result<TrainState> {
    let bad = |e: String| {
        EmberError::bad_input(format!("{}: {e}", run.file("last.safetensors").display()))
    };
    let mut state: TrainState = ckpt
        .meta
        .extra
        .get("train_state")
        .ok_or_else(|| bad("no ember.train_state: not a resumable checkpoint".into()))
        .and_then(|s| {
            serde_json::from_str(s).map_err(|e| bad(format!("bad ember.train_state ({e})")))
        })?;
    // Pre-training runs of version 0.1.0 kept the augmentation time among the loss parts.
    if let Some(seconds) = state.totals.parts.remove("augment_seconds") {
        state.totals.augment_seconds += seconds;
    }
    ember_models::load_into(vars.vars(), &ckpt.tensors, "the run's last checkpoint")?;
    opt.load_state(OPTIM_PREFIX, &ckpt.tensors, state.step as u64)
        .map_err(|e| bad(e.to_string()))?;
    Ok(state)
}

/// The checkpoint tensors of a run that are model weights, by name (for tools that only
/// need the model).
pub fn model_weights(ckpt: &Checkpoint) -> HashMap<String, Tensor> {
    ckpt.model_tensors()
        .map(|(k, t)| (k.clone(), t.clone()))
        .collect()
}
