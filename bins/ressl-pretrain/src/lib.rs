//! `ressl-pretrain`: self-supervised pre-training of any registered backbone with ReSSL
//! (arXiv 2203.08717, official code KyleZheng1997/ReSSL), with the official recipe scaled
//! by presets. The loop, data, kNN monitor, checkpoints and resume are
//! `ember_cli::pretrain`'s; the method is in `method.rs`. The exported backbone
//! (`backbone.safetensors`) is a normal checkpoint for `ember linear-eval` and `ember train
//! --init`.

mod method;
mod presets;

use clap::{Args, Parser};
use ember_cli::pretrain::{self, Built, PretrainArgs};
use ember_cli::{preset, RuntimeArgs};
use ember_core::{EmberError, Result};
use ember_data::ViewRecipe;
use serde_json::{json, Value};

pub use method::{Ressl, ResslSettings};
pub use presets::PRESETS;

/// Pre-train a backbone with ReSSL. Results go to stdout as one JSON line, progress to
/// stderr; the run directory holds metrics (with a kNN monitor each epoch), curves.png and
/// checkpoints, the backbone as backbone.safetensors.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "ressl-pretrain",
    version,
    about,
    max_term_width = 100,
    args_override_self = true
)]
pub struct Cli {
    #[command(flatten)]
    pub runtime: RuntimeArgs,
    /// Recipe to start from: fashion-mnist (the default), imagenet (the official recipe) or
    /// quick (a minute on the bundled subset). Later flags override its values;
    /// `--show-preset NAME` prints its flags.
    #[arg(long, default_value = "fashion-mnist", value_parser = preset::names(PRESETS))]
    pub preset: String,
    /// Print the flags of a preset and exit.
    #[arg(long, value_name = "NAME", value_parser = preset::names(PRESETS))]
    pub show_preset: Option<String>,
    #[command(flatten)]
    pub ressl: ResslArgs,
    #[command(flatten)]
    pub run: PretrainArgs,
}

/// ReSSL's own flags.
#[derive(Debug, Clone, Args)]
pub struct ResslArgs {
    /// Embedding width (the projection head's output).
    #[arg(long, default_value_t = 512)]
    pub dim: usize,
    /// Hidden width of the projection head.
    #[arg(long, default_value_t = 4096)]
    pub hidden: usize,
    /// Queue length K (past teacher embeddings the relations are measured against).
    #[arg(long, default_value_t = 131072)]
    pub queue: usize,
    /// Teacher momentum m: teacher = m teacher + (1 - m) student, every step (constant).
    #[arg(long, default_value_t = 0.999)]
    pub teacher_momentum: f64,
    /// Student temperature (hard-coded 0.1 in the official code).
    #[arg(long, default_value_t = 0.1)]
    pub tau_s: f64,
    /// Teacher temperature (the official --t).
    #[arg(long, default_value_t = 0.04)]
    pub tau_t: f64,
    /// Epochs trained with InfoNCE (temperature 0.2, same queue) before the relation loss:
    /// the journal version's warm-up, unreleased; 0 is the released code.
    #[arg(long, default_value_t = 0.0)]
    pub infonce_warmup: f64,
}

impl ResslArgs {
    fn settings(&self, steps_per_epoch: usize) -> Result<ResslSettings> {
        for (flag, v) in [("--tau-s", self.tau_s), ("--tau-t", self.tau_t)] {
            if v.is_nan() || v <= 0.0 {
                return Err(EmberError::bad_input(format!("{flag} must be positive")));
            }
        }
        if !(0.0..=1.0).contains(&self.teacher_momentum) {
            return Err(EmberError::bad_input(
                "--teacher-momentum must be in [0, 1]",
            ));
        }
        if self.dim == 0 || self.hidden == 0 || self.queue == 0 || self.infonce_warmup < 0.0 {
            return Err(EmberError::bad_input(
                "--dim, --hidden and --queue must be positive, --infonce-warmup not negative",
            ));
        }
        Ok(ResslSettings {
            dim: self.dim,
            hidden: self.hidden,
            queue: self.queue,
            momentum: self.teacher_momentum,
            tau_s: self.tau_s,
            tau_t: self.tau_t,
            warmup_steps: (self.infonce_warmup * steps_per_epoch as f64).round() as usize,
        })
    }

    fn report(&self) -> Value {
        json!({
            "method": "ressl",
            "dim": self.dim,
            "hidden": self.hidden,
            "queue": self.queue,
            "teacher_momentum": self.teacher_momentum,
            "tau_s": self.tau_s,
            "tau_t": self.tau_t,
            "infonce_warmup": self.infonce_warmup,
        })
    }
}

ember_cli::pretrain_tool!(
    Cli,
    ResslArgs,
    ressl,
    "ressl-pretrain",
    PRESETS,
    "fashion-mnist"
);

pub fn run(invocation: &Invocation) -> Result<Value> {
    pretrain::run_tool(&TOOL, invocation, |args, b| {
        Ok(Built {
            pretext: Box::new(Ressl::new(b, args.settings(b.steps_per_epoch)?)?),
            views: ViewRecipe::Ressl,
            report: args.report(),
        })
    })
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        super::Cli::command().debug_assert();
    }
}
