//! `scalenet-search train`: the super-supernet over a ScaleNet space (`--arch
//! scalenet_supernet_fashion`, or `scalenet_supernet` for the official ImageNet space, any
//! field overridable with `--model-config`), trained by the pre-training loop of
//! `ember_cli::pretrain` (data, kNN monitor on a reference sub-network, checkpoints,
//! `--resume`). The exported `backbone.safetensors` is the super-supernet, its model config
//! the space, so `search` rebuilds it from the file alone.

use clap::Args;
use ember_cli::pretrain::{self, Build, Built, PretrainArgs, PretrainSpec};
use ember_core::{EmberError, Result};
use ember_data::ViewRecipe;
use ember_models::scalenet::{Space, SuperSupernet};
use ember_search::scalenet::training::SuperSupernetTraining;
use serde_json::{json, Value};

/// The super-supernet's prefix in the run's var map.
pub const PREFIX: &str = "supernet";

#[derive(Debug, Clone, Args)]
pub struct TrainArgs {
    /// bc (BCNet's coupling: each module alternates its left and right channels, the
    /// official n = 2) or left (the first channels only, AutoSlim-style).
    #[arg(long, default_value = "bc", value_parser = ["bc", "left"])]
    pub coupling: String,
    /// Randomly flip training images horizontally (the official recipe does not).
    #[arg(long)]
    pub flip: bool,
    #[command(flatten)]
    pub run: PretrainArgs,
}

impl TrainArgs {
    fn lateral(&self) -> usize {
        if self.coupling == "left" {
            1
        } else {
            2
        }
    }
}

pub fn spec(
    args: &TrainArgs,
    runtime: &ember_cli::RuntimeArgs,
    argv: &[String],
) -> Result<PretrainSpec<TrainArgs>> {
    if args.run.resume.is_none() {
        let overrides = ember_cli::supervised::model_overrides(&args.run.model_config)?;
        let cfg = ember_models::resolve(&args.run.arch, &overrides)?;
        if cfg.family != "scalenet_supernet" {
            return Err(EmberError::bad_input(format!(
                "--arch {}: scalenet-search trains a super-supernet (scalenet_supernet_fashion, scalenet_supernet)",
                args.run.arch
            )));
        }
    }
    Ok(PretrainSpec::new(
        "scalenet-search train",
        runtime,
        &args.run,
        args.clone(),
        argv,
    ))
}

pub fn build(args: &TrainArgs, b: &Build) -> Result<Built> {
    let space: Space = serde_json::from_value(b.model.config.clone())
        .map_err(|e| EmberError::bad_input(format!("scalenet_supernet config: {e}")))?;
    let vb = b.vars.var_builder(b.dtype, b.device).pp(PREFIX);
    let net = SuperSupernet::new(&space, args.lateral(), vb)?;
    Ok(Built {
        pretext: Box::new(SuperSupernetTraining::new(net, PREFIX, b.seed)),
        views: ViewRecipe::Supervised {
            crop_padding: args.run.train.crop_padding,
            flip: args.flip,
        },
        report: json!({ "method": "scalenet", "coupling": args.coupling }),
    })
}

pub fn run(
    spec: PretrainSpec<TrainArgs>,
    device: &candle_core::Device,
    reparse: impl Fn(&[String]) -> Result<PretrainSpec<TrainArgs>>,
) -> Result<Value> {
    pretrain::pretrain(spec, device, reparse, build)
}
