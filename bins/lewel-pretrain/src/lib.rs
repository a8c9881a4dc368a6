//! `lewel-pretrain`: self-supervised pre-training of any registered backbone with LEWEL
//! (arXiv 2203.14898, official code LayneH/LEWEL) on a BYOL or MoCo base, or with the base
//! alone (`--no-align`) as the baseline, with the official recipe scaled by presets. The
//! loop, data, kNN monitor, checkpoints and resume are `ember_cli::pretrain`'s; the method
//! is in `method.rs`. The exported backbone (`backbone.safetensors`) is a normal checkpoint.

mod method;
mod presets;

use clap::{Args, Parser};
use ember_cli::pretrain::{self, Built, PretrainArgs};
use ember_cli::{preset, RuntimeArgs};
use ember_core::{EmberError, Result};
use ember_data::ViewRecipe;
use serde_json::{json, Value};

pub use method::{Base, Lewel, LewelSettings};
pub use presets::PRESETS;

/// Pre-train a backbone with LEWEL (or its BYOL / MoCo base). Results go to stdout as one
/// JSON line, progress to stderr; the run directory holds metrics (with a kNN monitor each
/// epoch), curves.png and checkpoints, the backbone as backbone.safetensors.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "lewel-pretrain",
    version,
    about,
    max_term_width = 100,
    args_override_self = true
)]
pub struct Cli {
    #[command(flatten)]
    pub runtime: RuntimeArgs,
    /// Recipe to start from: fashion-mnist (BYOL base, the default), fashion-mnist-moco,
    /// imagenet (the official EMAN recipe) or quick (a minute on the bundled subset). Later
    /// flags override its values; `--show-preset NAME` prints its flags.
    #[arg(long, default_value = "fashion-mnist", value_parser = preset::names(PRESETS))]
    pub preset: String,
    /// Print the flags of a preset and exit.
    #[arg(long, value_name = "NAME", value_parser = preset::names(PRESETS))]
    pub show_preset: Option<String>,
    #[command(flatten)]
    pub lewel: LewelArgs,
    #[command(flatten)]
    pub run: PretrainArgs,
}

/// LEWEL's own flags.
#[derive(Debug, Clone, Args)]
pub struct LewelArgs {
    /// The self-supervised method LEWEL extends: byol (the released code) or moco (LEWEL_M).
    #[arg(long, value_enum, default_value = "byol")]
    pub base: Base,
    /// Train the base alone, without alignment maps (the baseline).
    #[arg(long)]
    pub no_align: bool,
    /// Embedding width of the neck (and predictors).
    #[arg(long, default_value_t = 256)]
    pub dim: usize,
    /// Hidden width of the neck's and predictors' MLPs.
    #[arg(long, default_value_t = 4096)]
    pub hidden: usize,
    /// Heads of the aggregation: dim / heads aligned embeddings (the scripts' 4; main.py
    /// defaults to 8).
    #[arg(long, default_value_t = 4)]
    pub heads: usize,
    /// Temperature of the alignment maps' softmax over space.
    #[arg(long, default_value_t = 1.0)]
    pub scale: f64,
    /// Weight w of the global term; the aligned term gets 1 - w.
    #[arg(long, default_value_t = 0.5)]
    pub loss_weight: f64,
    /// The target's first momentum; it follows a cosine to 1 over the run, after each step.
    #[arg(long, default_value_t = 0.98)]
    pub teacher_momentum: f64,
    /// How the target normalises: eman (evaluation mode on averaged BN statistics, the
    /// 100/200-epoch recipe, LEWELB_EMAN) or batch (training mode, parameters averaged only:
    /// the SyncBN recipe, LEWELB).
    #[arg(long, default_value = "eman", value_parser = ["eman", "batch"])]
    pub target_norm: String,
    /// MoCo base: InfoNCE temperature.
    #[arg(long, default_value_t = 0.2)]
    pub tau: f64,
    /// MoCo base: length of each queue of keys.
    #[arg(long, default_value_t = 65536)]
    pub queue: usize,
}

impl LewelArgs {
    fn settings(&self, total_steps: usize) -> Result<LewelSettings> {
        if !(0.0..=1.0).contains(&self.loss_weight) {
            return Err(EmberError::bad_input("--loss-weight must be in [0, 1]"));
        }
        if !(0.0..=1.0).contains(&self.teacher_momentum) {
            return Err(EmberError::bad_input(
                "--teacher-momentum must be in [0, 1]",
            ));
        }
        if !(self.scale > 0.0 && self.tau > 0.0) {
            return Err(EmberError::bad_input("--scale and --tau must be positive"));
        }
        if self.dim == 0 || self.hidden == 0 || self.queue == 0 {
            return Err(EmberError::bad_input(
                "--dim, --hidden and --queue must be positive",
            ));
        }
        Ok(LewelSettings {
            base: self.base,
            align: !self.no_align,
            dim: self.dim,
            hidden: self.hidden,
            heads: self.heads,
            scale: self.scale,
            loss_weight: self.loss_weight,
            base_momentum: self.teacher_momentum,
            total_steps,
            tau: self.tau,
            queue: self.queue,
            eman: self.target_norm == "eman",
        })
    }

    fn report(&self) -> Value {
        let base = match self.base {
            Base::Byol => "byol",
            Base::Moco => "moco",
        };
        let mut r = json!({
            "method": if self.no_align { base.to_string() } else { format!("lewel-{base}") },
            "base": base,
            "align": !self.no_align,
            "dim": self.dim,
            "hidden": self.hidden,
            "teacher_momentum": self.teacher_momentum,
            "target_norm": self.target_norm,
        });
        if !self.no_align {
            r["heads"] = json!(self.heads);
            r["scale"] = json!(self.scale);
            r["loss_weight"] = json!(self.loss_weight);
        }
        if self.base == Base::Moco {
            r["tau"] = json!(self.tau);
            r["queue"] = json!(self.queue);
        }
        r
    }
}

ember_cli::pretrain_tool!(
    Cli,
    LewelArgs,
    lewel,
    "lewel-pretrain",
    PRESETS,
    "fashion-mnist"
);

pub fn run(invocation: &Invocation) -> Result<Value> {
    pretrain::run_tool(&TOOL, invocation, |args, b| {
        Ok(Built {
            pretext: Box::new(Lewel::new(b, args.settings(b.total_steps)?)?),
            views: ViewRecipe::Byol,
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
