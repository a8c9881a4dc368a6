//! `greenmim-pretrain`: masked image modelling on a Swin encoder, with GreenMIM (arXiv
//! 2205.13515, official code LayneH/GreenMIM: the encoder sees only the visible patches,
//! window attention on knapsack-packed groups, MAE's decoder) or the SimMIM-style dense
//! baseline (`--method simmim`: every patch through the encoder, masked ones as a learnt
//! token, a linear decoder), with the same mask, loss and recipe. The loop, data, kNN
//! monitor, checkpoints and resume are `ember_cli::pretrain`'s; the method is in
//! `method.rs`. The encoder is exported as a Swin classifier checkpoint
//! (`backbone.safetensors`) that `ember train --init` fine-tunes.

mod grid;
mod method;
mod presets;

use clap::{Args, Parser};
use ember_cli::pretrain::{self, Built, PretrainArgs};
use ember_cli::{preset, RuntimeArgs};
use ember_core::{EmberError, Result};
use ember_data::ViewRecipe;
use ember_models::mim::{Method, Placement};
use serde_json::{json, Value};

pub use method::Mim;
pub use presets::PRESETS;

/// Pre-train a Swin encoder by masked image modelling (GreenMIM, or SimMIM for comparison).
/// Results go to stdout as one JSON line, progress to stderr; the run directory holds
/// metrics (with a kNN monitor each epoch), curves.png, reconstruction grids and
/// checkpoints, the encoder as backbone.safetensors.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "greenmim-pretrain",
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
    pub mim: MimArgs,
    #[command(flatten)]
    pub run: PretrainArgs,
}

/// The masked-image-modelling flags.
#[derive(Debug, Clone, Args)]
pub struct MimArgs {
    /// greenmim (the encoder on visible patches, MAE's decoder) or simmim (every patch
    /// through the encoder with mask tokens, a linear decoder).
    #[arg(long, default_value = "greenmim", value_parser = ["greenmim", "simmim"])]
    pub method: String,
    /// Share of the mask units hidden (one mask per batch; the kept count is rounded down).
    #[arg(long, default_value_t = 0.75)]
    pub mask_ratio: f64,
    /// Decoder width (GreenMIM).
    #[arg(long, default_value_t = 512)]
    pub decoder_dim: usize,
    /// Decoder blocks (GreenMIM).
    #[arg(long, default_value_t = 1)]
    pub decoder_depth: usize,
    /// Decoder attention heads (GreenMIM).
    #[arg(long, default_value_t = 16)]
    pub decoder_heads: usize,
    /// Raw pixels as the target instead of per-unit normalised ones.
    #[arg(long)]
    pub no_norm_pix: bool,
    /// Where the decoder puts the visible latents: raster (each at its own unit, the
    /// default) or official (the released code's un-shuffle, which puts them at other
    /// visible units' positions; for reproducing it).
    #[arg(long, default_value = "raster", value_parser = ["raster", "official"])]
    pub placement: String,
    /// Write reconstruction-epochNNN.png (masked input, reconstruction, original) every N
    /// epochs and after the last (0: only after the last).
    #[arg(long, default_value_t = 5)]
    pub grid_every: usize,
}

impl MimArgs {
    fn method(&self) -> Method {
        if self.method == "simmim" {
            Method::SimMim
        } else {
            Method::GreenMim
        }
    }

    fn placement(&self) -> Placement {
        if self.placement == "official" {
            Placement::Official
        } else {
            Placement::Raster
        }
    }

    fn report(&self) -> Value {
        json!({
            "method": self.method,
            "mask_ratio": self.mask_ratio,
            "decoder_dim": self.decoder_dim,
            "decoder_depth": self.decoder_depth,
            "decoder_heads": self.decoder_heads,
            "norm_pix_loss": !self.no_norm_pix,
            "placement": self.placement,
        })
    }
}

ember_cli::pretrain_tool!(
    Cli,
    MimArgs,
    mim,
    "greenmim-pretrain",
    PRESETS,
    "fashion-mnist"
);

pub fn run(invocation: &Invocation) -> Result<Value> {
    pretrain::run_tool(&TOOL, invocation, |args, b| {
        if b.model.family != "swin" {
            return Err(EmberError::bad_input(format!(
                "greenmim-pretrain pre-trains a Swin encoder (--arch swin, swin_nano_32, ...), not {}",
                b.model.family
            )));
        }
        Ok(Built {
            pretext: Box::new(Mim::new(b, args)?),
            views: ViewRecipe::Mim,
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
