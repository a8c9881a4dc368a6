use clap::Args;
use ember_core::{EmberError, Result};
use ember_train::{OptimizerKind, ScheduleKind, TrainSettings};

/// How to train.
#[derive(Debug, Clone, Args)]
pub struct TrainArgs {
    /// Passes over the training set.
    #[arg(long, default_value_t = 30)]
    pub epochs: usize,
    /// sgd (momentum, optional Nesterov), adamw (decoupled weight decay) or lars (SGD with
    /// layer-wise trust ratios, eta 0.001, as the BYOL/LEWEL recipes).
    #[arg(long, default_value = "sgd", value_parser = ["sgd", "adamw", "lars"])]
    pub optimizer: String,
    /// Peak learning rate (after warm-up).
    #[arg(long, default_value_t = 0.1)]
    pub lr: f64,
    /// SGD momentum.
    #[arg(long, default_value_t = 0.9)]
    pub momentum: f64,
    /// Nesterov momentum (SGD).
    #[arg(long)]
    pub nesterov: bool,
    /// AdamW's moment decays beta1,beta2 (MAE-style pre-training: 0.9,0.95).
    /// (One value, not a list: a preset's value and a later flag replace each other.)
    #[arg(long, default_value = "0.9,0.999", value_name = "B1,B2")]
    pub betas: String,
    /// Weight decay; biases, norm weights and other 1-d parameters get none.
    #[arg(long, default_value_t = 5e-4)]
    pub weight_decay: f64,
    /// Learning-rate schedule after warm-up: cosine, step or constant; updated every step.
    #[arg(long, default_value = "cosine", value_parser = ["cosine", "step", "constant"])]
    pub schedule: String,
    /// Linear warm-up length in epochs (fractions allowed).
    #[arg(long, default_value_t = 1.0)]
    pub warmup_epochs: f64,
    /// Final learning rate of the cosine schedule.
    #[arg(long, default_value_t = 0.0)]
    pub min_lr: f64,
    /// Epochs at which the step schedule multiplies the rate by --gamma (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub milestones: Vec<usize>,
    /// Factor of the step schedule.
    #[arg(long, default_value_t = 0.1)]
    pub gamma: f64,
    /// Label smoothing of the cross-entropy.
    #[arg(long, default_value_t = 0.0)]
    pub label_smoothing: f64,
    /// Mixup Beta(alpha, alpha); 0 turns it off.
    #[arg(long, default_value_t = 0.0)]
    pub mixup: f64,
    /// CutMix Beta(alpha, alpha); 0 turns it off (with both on, each batch picks one).
    #[arg(long, default_value_t = 0.0)]
    pub cutmix: f64,
    /// Clip gradients to this global L2 norm.
    #[arg(long)]
    pub clip_grad: Option<f64>,
    /// Keep an exponential moving average of the weights with this decay and evaluate it.
    #[arg(long)]
    pub ema_decay: Option<f64>,
    /// Zero padding of the random crop (0 turns the crop off).
    #[arg(long, default_value_t = 4)]
    pub crop_padding: usize,
    /// Turn off the random horizontal flip.
    #[arg(long)]
    pub no_flip: bool,
    /// Seconds between mid-epoch checkpoints (0: only at the end of each epoch).
    #[arg(long, default_value_t = 60)]
    pub checkpoint_secs: u64,
    /// Also write a mid-epoch checkpoint every this many steps (0: by time only).
    #[arg(long, default_value_t = 0)]
    pub checkpoint_steps: usize,
}

impl TrainArgs {
    pub fn settings(&self, seed: u64) -> Result<TrainSettings> {
        let settings = TrainSettings {
            epochs: self.epochs,
            optimizer: match self.optimizer.as_str() {
                "adamw" => OptimizerKind::Adamw,
                "lars" => OptimizerKind::Lars,
                _ => OptimizerKind::Sgd,
            },
            lr: self.lr,
            momentum: self.momentum,
            nesterov: self.nesterov,
            betas: parse_betas(&self.betas)?,
            weight_decay: self.weight_decay,
            schedule: match self.schedule.as_str() {
                "step" => ScheduleKind::Step,
                "constant" => ScheduleKind::Constant,
                _ => ScheduleKind::Cosine,
            },
            warmup_epochs: self.warmup_epochs,
            min_lr: self.min_lr,
            milestones: self.milestones.clone(),
            gamma: self.gamma,
            label_smoothing: self.label_smoothing,
            mixup: self.mixup,
            cutmix: self.cutmix,
            clip_grad: self.clip_grad,
            ema_decay: self.ema_decay,
            checkpoint_secs: self.checkpoint_secs,
            checkpoint_steps: self.checkpoint_steps,
            seed,
        };
        settings.validate().map_err(EmberError::bad_input)?;
        Ok(settings)
    }
}

/// `B1,B2` as two numbers.
fn parse_betas(text: &str) -> Result<(f64, f64)> {
    let values: Vec<Option<f64>> = text.split(',').map(|v| v.trim().parse().ok()).collect();
    match values[..] {
        [Some(b1), Some(b2)] => Ok((b1, b2)),
        _ => Err(EmberError::bad_input(format!(
            "--betas takes two numbers, e.g. 0.9,0.95 (got {text})"
        ))),
    }
}
