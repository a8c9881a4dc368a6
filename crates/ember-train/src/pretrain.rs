//! The self-supervised pre-training loop: per step, the method's loss on the augmented views
//! of a batch, backward, the optimizer step and the method's own update (momentum encoder,
//! queue); per epoch, a kNN monitor on frozen features, `metrics.jsonl`, `curves.png`, the
//! backbone exported as a normal checkpoint (`backbone.safetensors`, and `best.safetensors`
//! at the best kNN accuracy) and an atomic `last.safetensors` that resumes the run exactly,
//! mid-epoch too. A NaN/inf loss stops the run with the last good checkpoint intact.

use std::collections::HashMap;
use std::time::Instant;

use candle_core::{DType, Device, Tensor, Var};
use ember_core::plot::Panel;
use ember_core::{Checkpoint, CheckpointMeta, Result, RunDir, SeededVarMap};
use ember_data::Loader;
use ember_models::Classifier;
use serde::Serialize;
use serde_json::{json, Value};

use crate::features::{extract, Knn};
use crate::objective::StepLoss;
use crate::optim::{Optimizer, ParamGroup};
use crate::progress::Progress;
use crate::settings::TrainSettings;
use crate::totals::{checkpoint_due, diverged, kept_history, next_batch, EpochTotals, StepTally};
use crate::trainer::{restore_run, series, train_losses, TrainState, OPTIM_PREFIX};

/// Where a pretext's own state rides in `last.safetensors`.
pub const PRETEXT_PREFIX: &str = "@train/pretext/";

/// A self-supervised method as the loop drives it.
pub trait Pretext {
    /// The loss of one training step on the views `[n, c, h, w]` of a batch (training mode),
    /// with named parts for the record. `labels` are the batch's classes (which a
    /// self-supervised method ignores and a supernet trains on); `step` counts optimizer
    /// steps from 0.
    fn loss(&self, views: &[Tensor], labels: &[u32], step: usize) -> Result<StepLoss>;

    /// After each optimizer step (a momentum update that follows the step, say).
    fn after_step(&self, _step: usize) -> Result<()> {
        Ok(())
    }

    /// The optimizer's parameter groups from the variables it may train (the online
    /// network and heads, never a momentum target).
    fn groups(&self, vars: &SeededVarMap, weight_decay: f64) -> Vec<ParamGroup>;

    /// State beyond the variables (a queue), saved in `last.safetensors`.
    fn state(&self) -> Vec<(String, Tensor)> {
        Vec::new()
    }

    /// Restores what [`Pretext::state`] saved.
    fn restore(&self, _saved: &HashMap<String, Tensor>) -> Result<()> {
        Ok(())
    }

    /// After each epoch's checkpoints, with the run folder and the held-out images (eval
    /// transforms): a method's own per-epoch output (GreenMIM's reconstruction grid).
    fn after_epoch(&self, _epoch: usize, _run: &RunDir, _held_out: &Loader) -> Result<()> {
        Ok(())
    }

    /// The backbone being pre-trained (the online one).
    fn backbone(&self) -> &dyn Classifier;

    /// The prefix of the backbone's variables in the run's var map (`encoder_q.net`).
    fn backbone_prefix(&self) -> &str;
}

/// The kNN monitor's data: a bank of labelled training images and held-out queries, both
/// with evaluation transforms.
pub struct Monitor {
    pub bank: Loader,
    pub queries: Loader,
    pub knn: Knn,
}

#[derive(Debug, Clone, Serialize)]
pub struct PretrainSummary {
    pub epochs: usize,
    pub knn_top1: f64,
    pub best_knn_top1: f64,
    pub best_epoch: usize,
    pub train_seconds: f64,
    pub images_per_s: f64,
    pub augment_share: f64,
    pub run_dir: String,
    pub backbone: String,
}

pub struct Pretrainer<'a> {
    /// Arch, config, labels and preprocessing of the exported backbone.
    pub backbone_meta: CheckpointMeta,
    pub vars: &'a SeededVarMap,
    pub pretext: &'a dyn Pretext,
    pub train: Loader,
    pub monitor: Monitor,
    pub settings: TrainSettings,
    pub run: RunDir,
    /// Metadata of `last.safetensors` (the whole method's state).
    pub meta: CheckpointMeta,
    pub device: Device,
    pub dtype: DType,
    pub quiet: bool,
}

impl Pretrainer<'_> {
    pub fn fit(&self, resume: Option<&Checkpoint>) -> Result<PretrainSummary> {
        let s = &self.settings;
        let steps_per_epoch = self.train.batches_per_epoch();
        let schedule = s.schedule(steps_per_epoch);
        let mut opt = Optimizer::new(
            s.method(),
            self.pretext.groups(self.vars, s.weight_decay),
            s.lr,
        );
        let mut state = TrainState::default();
        let mut history = Vec::new();
        if let Some(ckpt) = resume {
            state = self.restore(ckpt, &mut opt)?;
            history = kept_history(&self.run, state.epoch)?;
        }
        crate::dist::sync_all(self.vars)?;
        let quiet = self.quiet || !ember_core::dist::world().is_primary();
        let classes = self.backbone_meta.labels.len();
        for epoch in state.epoch..s.epochs {
            if state.batch == 0 {
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
                let batch = batch?;
                let n = batch.len();
                let views = (0..=batch.more_views.len())
                    .map(|v| Ok(batch.view(v, &self.device)?.to_dtype(self.dtype)?))
                    .collect::<Result<Vec<_>>>()?;
                let lr = schedule.lr(state.step);
                opt.set_lr(lr);
                // DDP's `broadcast_buffers`: every step starts from rank 0's batch-norm
                // statistics, so a teacher that reads them (LEWEL's EMAN) is the same on
                // every rank.
                crate::dist::sync_buffers(self.vars)?;
                let out = self.pretext.loss(&views, &batch.labels, state.step)?;
                let local = out.total.to_dtype(DType::F64)?.to_scalar::<f64>()?;
                let tally = StepTally::new(n, local, &out.parts)?.over_ranks(&self.device)?;
                let loss = tally.loss();
                if !loss.is_finite() {
                    progress.finish();
                    return Err(diverged(
                        &self.run,
                        "pre-training",
                        epoch,
                        state.batch,
                        loss,
                    ));
                }
                if let Some(grads) = opt.backward(&out.total)? {
                    opt.step(&grads)?;
                }
                self.pretext.after_step(state.step)?;
                state.totals.add_tally(&tally, &mut tick);
                state.step += 1;
                state.batch += 1;
                progress.update(state.batch, &state.totals.progress_message(lr));
                if checkpoint_due(s, last_save, state.step, state.batch, steps_per_epoch) {
                    self.save_last(&state, &opt, &Value::Null)?;
                    last_save = Instant::now();
                }
            }
            drop(batches);
            progress.finish();

            crate::dist::sync_buffers(self.vars)?;
            let knn = self.knn_top1(classes)?;
            let improved = state.best_top1.is_none_or(|b| knn > b);
            if improved {
                state.best_top1 = Some(knn);
                state.best_epoch = Some(epoch + 1);
            }
            let mut record = json!({
                "epoch": epoch + 1,
                "knn_top1": knn,
                "lr": opt.lr(),
            });
            record
                .as_object_mut()
                .expect("a JSON object")
                .extend(state.totals.record());
            if !quiet {
                eprintln!(
                    "epoch {}/{}: loss {:.4}, kNN top-1 {knn:.2}% ({:.0} img/s)",
                    epoch + 1,
                    s.epochs,
                    record["train_loss"].as_f64().unwrap_or(0.0),
                    record["images_per_s"].as_f64().unwrap_or(0.0)
                );
            }
            self.export("backbone.safetensors", &record)?;
            if improved {
                self.export("best.safetensors", &record)?;
            }
            // Metrics first, then the checkpoint that moves past this epoch (a kill between
            // the two reruns the epoch's end and replaces the record).
            self.run.append_metrics(&record)?;
            history.push(record.clone());
            state.epoch = epoch + 1;
            state.batch = 0;
            state.totals = EpochTotals::default();
            self.save_last(&state, &opt, &record)?;
            self.draw(&history)?;
            self.pretext
                .after_epoch(epoch + 1, &self.run, &self.monitor.queries)?;
        }
        let last = history.last().cloned().unwrap_or(Value::Null);
        let total_seconds: f64 = history
            .iter()
            .filter_map(|r| r["epoch_seconds"].as_f64())
            .sum();
        let mean = |key: &str| {
            let v: Vec<f64> = history.iter().filter_map(|r| r[key].as_f64()).collect();
            v.iter().sum::<f64>() / v.len().max(1) as f64
        };
        let summary = PretrainSummary {
            epochs: s.epochs,
            knn_top1: last["knn_top1"].as_f64().unwrap_or(0.0),
            best_knn_top1: state.best_top1.unwrap_or(0.0),
            best_epoch: state.best_epoch.unwrap_or(0),
            train_seconds: total_seconds,
            images_per_s: mean("images_per_s"),
            augment_share: mean("augment_share"),
            run_dir: self.run.root().display().to_string(),
            backbone: self.run.file("backbone.safetensors").display().to_string(),
        };
        self.run.write_json(
            "summary.json",
            &serde_json::to_value(&summary).expect("summaries serialise"),
        )?;
        Ok(summary)
    }

    fn knn_top1(&self, classes: usize) -> Result<f64> {
        let (model, dev, dt) = (self.pretext.backbone(), &self.device, self.dtype);
        let (bank, bank_labels) = extract(model, &self.monitor.bank, dev, dt)?;
        let (queries, labels) = extract(model, &self.monitor.queries, dev, dt)?;
        self.monitor
            .knn
            .accuracy(&bank, &bank_labels, &queries, &labels, classes)
    }

    fn restore(&self, ckpt: &Checkpoint, opt: &mut Optimizer) -> Result<TrainState> {
        let state = restore_run(ckpt, &self.run, self.vars, opt)?;
        let saved: HashMap<String, Tensor> = ckpt
            .tensors
            .iter()
            .filter_map(|(k, t)| Some((k.strip_prefix(PRETEXT_PREFIX)?.to_string(), t.clone())))
            .collect();
        self.pretext.restore(&saved)?;
        Ok(state)
    }

    fn save_last(&self, state: &TrainState, opt: &Optimizer, metrics: &Value) -> Result<()> {
        let mut meta = self.meta.clone();
        meta.metrics = metrics.clone();
        meta.extra.insert(
            "train_state".into(),
            serde_json::to_string(state).expect("state serialises"),
        );
        let mut tensors = self.vars.tensors();
        tensors.extend(opt.state_tensors(OPTIM_PREFIX));
        tensors.extend(
            self.pretext
                .state()
                .into_iter()
                .map(|(k, t)| (format!("{PRETEXT_PREFIX}{k}"), t)),
        );
        self.run.save_checkpoint(
            "last.safetensors",
            &meta,
            tensors.iter().map(|(k, t)| (k.as_str(), t)),
        )
    }

    /// The backbone alone, under its own names: a checkpoint `ember eval`, `ember train
    /// --init` and `ember linear-eval` take as they take any.
    fn export(&self, file: &str, metrics: &Value) -> Result<()> {
        let mut meta = self.backbone_meta.clone();
        meta.metrics = metrics.clone();
        let tensors = backbone_tensors(self.vars, self.pretext.backbone_prefix());
        self.run
            .save_checkpoint(file, &meta, tensors.iter().map(|(k, t)| (k.as_str(), t)))
    }

    fn draw(&self, history: &[Value]) -> Result<()> {
        let panels = [
            Panel {
                title: "pre-training loss".into(),
                y_label: "loss".into(),
                series: train_losses(history),
            },
            Panel {
                title: "kNN monitor".into(),
                y_label: "top-1 %".into(),
                series: vec![series(history, "kNN (test)", "knn_top1")],
            },
        ];
        self.run.draw_curves("curves.png", &panels)
    }
}

/// The variables under `prefix.`, renamed without it.
pub fn backbone_tensors(vars: &SeededVarMap, prefix: &str) -> Vec<(String, Tensor)> {
    let dotted = format!("{prefix}.");
    vars.named()
        .into_iter()
        .filter_map(|(k, v): (String, Var)| {
            Some((k.strip_prefix(&dotted)?.to_string(), v.as_tensor().clone()))
        })
        .collect()
}
