//! Everything that decides a training run besides the model and the data. Saved in the run's
//! `config.json`, so `--resume` continues with exactly the same settings.

use serde::{Deserialize, Serialize};

use crate::mix::MixConfig;
use crate::optim::Method;
use crate::schedule::{Decay, Schedule};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    Sgd,
    Adamw,
    Lars,
}

/// LARS's trust coefficient in LEWEL's recipes (`utils/LARS.py`, eta = 0.001).
pub const LARS_ETA: f64 = 0.001;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScheduleKind {
    Cosine,
    Step,
    Constant,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainSettings {
    pub epochs: usize,
    pub optimizer: OptimizerKind,
    pub lr: f64,
    pub momentum: f64,
    pub nesterov: bool,
    /// AdamW's moment decays (beta1, beta2); MAE-style pre-training uses (0.9, 0.95).
    #[serde(default = "adam_betas")]
    pub betas: (f64, f64),
    pub weight_decay: f64,
    pub schedule: ScheduleKind,
    pub warmup_epochs: f64,
    pub min_lr: f64,
    /// Epochs at which the step schedule multiplies the rate by `gamma`.
    pub milestones: Vec<usize>,
    pub gamma: f64,
    pub label_smoothing: f64,
    pub mixup: f64,
    pub cutmix: f64,
    pub clip_grad: Option<f64>,
    pub ema_decay: Option<f64>,
    /// Seconds between mid-epoch checkpoints (0: only at epoch ends).
    pub checkpoint_secs: u64,
    /// Optimizer steps between mid-epoch checkpoints (0: no step cadence), a cadence that
    /// does not depend on the machine's speed. Either interval due writes one.
    #[serde(default)]
    pub checkpoint_steps: usize,
    pub seed: u64,
}

fn adam_betas() -> (f64, f64) {
    (0.9, 0.999)
}

impl TrainSettings {
    pub fn method(&self) -> Method {
        match self.optimizer {
            OptimizerKind::Sgd => Method::Sgd {
                momentum: self.momentum,
                nesterov: self.nesterov,
            },
            OptimizerKind::Adamw => Method::AdamW {
                beta1: self.betas.0,
                beta2: self.betas.1,
                eps: 1e-8,
            },
            OptimizerKind::Lars => Method::Lars {
                momentum: self.momentum,
                eta: LARS_ETA,
            },
        }
    }

    pub fn schedule(&self, steps_per_epoch: usize) -> Schedule {
        let decay = match self.schedule {
            ScheduleKind::Cosine => Decay::Cosine {
                min_lr: self.min_lr,
            },
            ScheduleKind::Step => Decay::Step {
                milestones: self
                    .milestones
                    .iter()
                    .map(|e| e * steps_per_epoch)
                    .collect(),
                gamma: self.gamma,
            },
            ScheduleKind::Constant => Decay::Constant,
        };
        Schedule {
            base_lr: self.lr,
            warmup_steps: (self.warmup_epochs * steps_per_epoch as f64).round() as usize,
            warmup_start: 0.01,
            total_steps: self.epochs * steps_per_epoch,
            decay,
        }
    }

    pub fn mix(&self) -> MixConfig {
        MixConfig {
            mixup_alpha: self.mixup,
            cutmix_alpha: self.cutmix,
            switch_prob: 0.5,
            label_smoothing: self.label_smoothing,
        }
    }

    /// Checks combinations no single flag can: the user gets one line naming the problem.
    pub fn validate(&self) -> Result<(), String> {
        if self.epochs == 0 {
            return Err("--epochs must be at least 1".into());
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return Err(format!("--lr must be positive, got {}", self.lr));
        }
        if !(0.0..1.0).contains(&self.label_smoothing) {
            return Err(format!(
                "--label-smoothing must be in [0, 1), got {}",
                self.label_smoothing
            ));
        }
        if self.mixup < 0.0 || self.cutmix < 0.0 {
            return Err(
                "--mixup and --cutmix are Beta(alpha, alpha) parameters and cannot be negative"
                    .into(),
            );
        }
        if let Some(d) = self.ema_decay {
            if !(0.0..1.0).contains(&d) {
                return Err(format!("--ema-decay must be in [0, 1), got {d}"));
            }
        }
        if let Some(c) = self.clip_grad {
            if c <= 0.0 {
                return Err(format!("--clip-grad must be positive, got {c}"));
            }
        }
        let (b1, b2) = self.betas;
        if !((0.0..1.0).contains(&b1) && (0.0..1.0).contains(&b2)) {
            return Err(format!("--betas must both be in [0, 1), got {b1},{b2}"));
        }
        if self.nesterov && (self.optimizer != OptimizerKind::Sgd || self.momentum == 0.0) {
            return Err("--nesterov needs --optimizer sgd with a non-zero --momentum".into());
        }
        if self.schedule == ScheduleKind::Step && self.milestones.is_empty() {
            return Err("--schedule step needs --milestones".into());
        }
        Ok(())
    }
}
