//! `dyrep-train`'s own flags: the training mode and DyRep's knobs, with the official defaults.

use clap::{Args, ValueEnum};
use ember_core::{EmberError, Result};
use ember_models::rep::{Branches, Importance};

use crate::evolve::Evolution;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// The network as it is (the baseline).
    Plain,
    /// Every growable convolution a RepVGG block from the start (kxk, 1x1, identity).
    Repvgg,
    /// Every growable convolution a DBB from the start (1x1, 1x1-kxk, 1x1-avg, kxk).
    Dbb,
    /// Dynamic re-parameterisation: grow where it matters, cut what does not.
    Dyrep,
}

#[derive(Debug, Clone, Args)]
pub struct DyRepArgs {
    /// Model to train: any registered conv net (resnet, resnet18, ...).
    #[arg(long, default_value = "resnet")]
    pub arch: String,
    #[arg(long, value_enum, default_value = "dyrep")]
    pub mode: Mode,
    /// Epochs between structure adjustments (official: 5 on ImageNet, 15 on CIFAR).
    #[arg(long, default_value_t = 1, value_name = "EPOCHS")]
    pub grow_interval: usize,
    /// No adjustment once this many epochs have run [default: 5/6 of --epochs, as CIFAR's
    /// 500 of 600].
    #[arg(long, value_name = "EPOCHS")]
    pub max_adjust_epoch: Option<usize>,
    /// How a convolution's importance is scored each step.
    #[arg(long, default_value = "synflow", value_parser = ["synflow", "snip", "grad_norm"])]
    pub importance: String,
    /// Branches of a grown block (official list [1x1, 1x1-kxk, 1x1-avg, kxk, 1xk, kx1, id]);
    /// also the blocks of --mode repvgg / dbb when given.
    #[arg(long, value_name = "JSON")]
    pub branches: Option<String>,
    /// Training batches that recalibrate a new block's BNs before its kxk branch absorbs the
    /// difference (0: none).
    #[arg(long, default_value_t = 20)]
    pub recal_iters: usize,
    /// The cut rule: branches are cut when the spread (unbiased std) of the branch weights
    /// exceeds this...
    #[arg(long, default_value_t = 0.02)]
    pub cut_spread: f64,
    /// ...and a branch's weight is below both their mean and this.
    #[arg(long, default_value_t = 0.1)]
    pub cut_floor: f64,
}

impl DyRepArgs {
    /// The branches of --branches, or `default`.
    pub fn branches_or(&self, default: Branches) -> Result<Branches> {
        match &self.branches {
            None => Ok(default),
            Some(text) => serde_json::from_str(text).map_err(|e| {
                EmberError::bad_input(format!(
                    "--branches: a list of seven 0/1 flags with kxk (index 3) on, e.g. [1,1,1,1,1,1,1] ({e})"
                ))
            }),
        }
    }

    pub fn evolution(&self, epochs: usize) -> Result<Evolution> {
        if self.grow_interval == 0 {
            return Err(EmberError::bad_input("--grow-interval must be at least 1"));
        }
        Ok(Evolution {
            interval: self.grow_interval,
            max_adjust_epoch: self.max_adjust_epoch.unwrap_or(epochs * 5 / 6),
            importance: self
                .importance
                .parse::<Importance>()
                .map_err(EmberError::bad_input)?,
            branches: self.branches_or(Branches::ALL)?,
            recal_iters: self.recal_iters,
            spread: self.cut_spread,
            floor: self.cut_floor,
        })
    }
}
