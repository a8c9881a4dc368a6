//! `bcnet-search train`: a width-search supernet over a Channel-Bench-Macro network
//! (`--arch cbm_mobilenet_small` and the like), trained by the pre-training loop of
//! `ember_cli::pretrain` (data, kNN monitor, checkpoints, `--resume`). Every layer stores
//! the arch's widths, enlarged by BCNetV2's base bins when `--min-bins` > 1; the exported
//! `backbone.safetensors` is the supernet, and its metadata (`ember.pretrained`) holds the
//! bins, so `search` and `score` rebuild it from the file alone.

use clap::Args;
use ember_cli::pretrain::{self, Build, Built, PretrainArgs, PretrainSpec};
use ember_cli::supervised::model_overrides;
use ember_core::{EmberError, Result};
use ember_data::ViewRecipe;
use ember_models::cbm::{self, MacroNet};
use ember_search::bcnet::BinnedWidths;
use ember_search::supernet::{Coupling, Supernet};
use serde_json::{json, Value};

/// The supernet's prefix in the run's var map.
pub const PREFIX: &str = "supernet";

#[derive(Debug, Clone, Args)]
pub struct TrainArgs {
    #[command(flatten)]
    pub supernet: SupernetArgs,
    #[command(flatten)]
    pub run: PretrainArgs,
}

/// How widths are binned and trained.
#[derive(Debug, Clone, Args)]
pub struct SupernetArgs {
    /// K: bins per layer width (Channel-Bench-Macro: 4; the spec's Fashion-MNIST space: 8).
    #[arg(long, default_value_t = 4)]
    pub bins: usize,
    /// m: the fewest bins of a width. Above 1 this is BCNetV2 (every layer stores K + m
    /// bins so the narrowed space stays fair); 1 is BCNet.
    #[arg(long, default_value_t = 1)]
    pub min_bins: usize,
    /// bc (left and right paths, half each: BCNet) or ua (the left path only: the
    /// unilateral AutoSlim-style baseline).
    #[arg(long, default_value = "bc", value_parser = ["bc", "ua"])]
    pub coupling: String,
}

impl SupernetArgs {
    pub fn coupling(&self) -> Coupling {
        match self.coupling.as_str() {
            "ua" => Coupling::Left,
            _ => Coupling::Bilateral,
        }
    }

    /// What the exported supernet records about itself.
    pub fn report(&self, maxima: &[usize]) -> Value {
        json!({
            "method": "bcnet",
            "bins": self.bins,
            "min_bins": self.min_bins,
            "coupling": self.coupling,
            "maxima": maxima,
        })
    }
}

/// The arch's widths (the largest sub-network) and the bins over them.
fn binned(args: &TrainArgs) -> Result<BinnedWidths> {
    let overrides = model_overrides(&args.run.model_config)?;
    let cfg = ember_models::resolve(&args.run.arch, &overrides)?;
    if cfg.family != "cbm" {
        return Err(EmberError::bad_input(format!(
            "--arch {}: bcnet-search trains Channel-Bench-Macro networks (cbm_mobilenet_small, cbm_mobilenet, cbm_resnet)",
            args.run.arch
        )));
    }
    let model: cbm::Config = serde_json::from_value(cfg.config)
        .map_err(|e| EmberError::bad_input(format!("cbm config: {e}")))?;
    let s = &args.supernet;
    BinnedWidths::new(model.widths, s.bins, s.min_bins)
}

/// The run as `ember_cli::pretrain` takes it: the stored (possibly enlarged) widths go into
/// the model config, on top of the user's overrides.
pub fn spec(
    args: &TrainArgs,
    runtime: &ember_cli::RuntimeArgs,
    argv: &[String],
) -> Result<PretrainSpec<TrainArgs>> {
    if args.run.resume.is_some() {
        // The saved command line decides everything; it is re-parsed through this function.
        return Ok(PretrainSpec::new(
            "bcnet-search train",
            runtime,
            &args.run,
            args.clone(),
            argv,
        ));
    }
    let widths = binned(args)?;
    let mut overrides = model_overrides(&args.run.model_config)?;
    if overrides.is_null() {
        overrides = json!({});
    }
    overrides["widths"] = json!(widths.stored());
    let mut run = args.run.clone();
    run.model_config = Some(overrides.to_string());
    // The saved command line is the user's (the stored widths are derived again on resume).
    Ok(PretrainSpec::new(
        "bcnet-search train",
        runtime,
        &run,
        args.clone(),
        argv,
    ))
}

pub fn build(args: &TrainArgs, b: &Build) -> Result<Built> {
    let widths = binned(args)?;
    let cfg: cbm::Config = serde_json::from_value(b.model.config.clone())
        .map_err(|e| EmberError::bad_input(format!("cbm config: {e}")))?;
    let vb = b.vars.var_builder(b.dtype, b.device).pp(PREFIX);
    let net = MacroNet::new(&cfg, vb)?;
    let report = args.supernet.report(&widths.maxima);
    let supernet = Supernet::new(net, widths, args.supernet.coupling(), PREFIX, b.seed);
    Ok(Built {
        pretext: Box::new(supernet),
        views: ViewRecipe::Supervised {
            crop_padding: args.run.train.crop_padding,
            flip: true,
        },
        report,
    })
}

/// Runs `train` (or resumes it); `reparse` turns a saved command line back into its spec.
pub fn run(
    spec: PretrainSpec<TrainArgs>,
    device: &candle_core::Device,
    reparse: impl Fn(&[String]) -> Result<PretrainSpec<TrainArgs>>,
) -> Result<Value> {
    pretrain::pretrain(spec, device, reparse, build)
}
