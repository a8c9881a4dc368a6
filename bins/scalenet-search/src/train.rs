//! `scalenet-search train`: the super-supernet over a ScaleNet space (`--arch
//! scalenet_supernet_fashion`, or `scalenet_supernet` for the official ImageNet space, any
//! field overridable with `--model-config`), trained by the pre-training loop of
//! `ember_cli::pretrain` (data, kNN monitor on a reference sub-network, checkpoints,
//! `--resume`). The exported `backbone.safetensors` is the super-supernet, its model config
//! the space, so `search` rebuilds it from the file alone.

use clap::Args;
use ember_cli::pretrain::{self, Build, Built, PretrainArgs, PretrainSpec};
use ember_core::{EmberError, EmberRng, Result};
use ember_data::ViewRecipe;
use ember_models::scalenet::{Space, SuperSupernet};
use ember_search::scalenet::sampling::sample_subnet;
use ember_search::scalenet::training::SuperSupernetTraining;
use serde_json::{json, Value};

/// The super-supernet's prefix in the run's var map.
pub const PREFIX: &str = "supernet";

#[derive(Debug, Clone, Args)]
pub struct TrainArgs {
    /// bc (BCNet's coupling, the official asynchronous n = 2: each module alternates its
    /// left and right channels call by call, so a pass may mix sides), bc-sync (the
    /// official `asyn: False`: each step runs its sub-network on the left and on the right
    /// channels, half the loss each; twice the compute) or left (the first channels only,
    /// AutoSlim-style).
    #[arg(long, default_value = "bc", value_parser = ["bc", "bc-sync", "left"])]
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
        pretext: Box::new(SuperSupernetTraining::new(
            net,
            args.coupling == "bc-sync",
            PREFIX,
            b.seed,
        )),
        views: ViewRecipe::Supervised {
            crop_padding: args.run.train.crop_padding,
            flip: args.flip,
        },
        report: json!({
            "method": "scalenet",
            "coupling": args.coupling,
            "draw_macs_by_stage": mean_macs_by_stage(&space),
        }),
    })
}

/// The mean exact MACs of the training draws of each scaling stage (2000 draws): what a
/// supernet trained on one scale alone would cost per step, relative to this one.
fn mean_macs_by_stage(space: &Space) -> Vec<f64> {
    let mut rng = EmberRng::new(0);
    let mut sums = vec![(0.0, 0usize); space.scaling.len()];
    for _ in 0..2000 {
        let (s, sub) = sample_subnet(space, &mut rng);
        sums[s].0 += space.plan(&sub).cost().macs as f64;
        sums[s].1 += 1;
    }
    sums.iter().map(|&(m, n)| m / n.max(1) as f64).collect()
}

pub fn run(
    spec: PretrainSpec<TrainArgs>,
    device: &candle_core::Device,
    reparse: impl Fn(&[String]) -> Result<PretrainSpec<TrainArgs>>,
) -> Result<Value> {
    pretrain::pretrain(spec, device, reparse, build)
}
