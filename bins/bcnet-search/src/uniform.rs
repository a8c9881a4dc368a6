//! `bcnet-search uniform`: the baseline a width search must beat: every layer of the arch
//! scaled by one factor, the largest whose MACs stay within the budget. Written as a model
//! config, like `search`'s winner, for `ember train --arch cbm --model-config FILE`.

use std::path::PathBuf;

use clap::Args;
use ember_cli::supervised::model_overrides;
use ember_core::{EmberError, Result};
use ember_models::cbm;
use serde_json::{json, Value};

#[derive(Debug, Clone, Args)]
pub struct UniformArgs {
    /// A Channel-Bench-Macro arch (its widths are the largest network).
    #[arg(long, default_value = "cbm_mobilenet_small")]
    pub arch: String,
    /// JSON object (or a file) overriding fields of the arch's config.
    #[arg(long, value_name = "JSON|FILE")]
    pub model_config: Option<String>,
    /// The FLOPs budget F in multiply-accumulates per image.
    #[arg(long, value_name = "MACS", conflicts_with = "flops_ratio")]
    pub flops: Option<f64>,
    /// The budget as a fraction of the largest network's MACs.
    #[arg(long, value_name = "R")]
    pub flops_ratio: Option<f64>,
    /// Input channels and side the MACs are counted at (Fashion-MNIST: 1 and 28).
    #[arg(long, default_value_t = 1)]
    pub in_chans: usize,
    #[arg(long, default_value_t = 28)]
    pub side: usize,
    /// Where to write the model config.
    #[arg(long, short, value_name = "FILE", default_value = "uniform.json")]
    pub out: PathBuf,
}

/// Bisection steps on the scale factor (far below one channel's difference).
const STEPS: usize = 60;

pub fn run(args: &UniformArgs) -> Result<Value> {
    let overrides = model_overrides(&args.model_config)?;
    let resolved = ember_models::resolve(&args.arch, &overrides)?;
    if resolved.family != "cbm" {
        return Err(EmberError::bad_input(format!(
            "--arch {}: a Channel-Bench-Macro arch (cbm_mobilenet_small, cbm_mobilenet, cbm_resnet)",
            args.arch
        )));
    }
    let mut full: cbm::Config = serde_json::from_value(resolved.config)
        .map_err(|e| EmberError::bad_input(format!("cbm config: {e}")))?;
    full.in_chans = args.in_chans;
    full.validate().map_err(EmberError::bad_input)?;
    let scaled = |alpha: f64| cbm::Config {
        widths: full
            .widths
            .iter()
            .map(|&w| ((w as f64 * alpha).round() as usize).max(1))
            .collect(),
        ..full.clone()
    };
    let macs = |cfg: &cbm::Config| cfg.cost(args.side).macs as f64;
    let largest = macs(&full);
    let budget = match (args.flops, args.flops_ratio) {
        (Some(f), None) if f > 0.0 => f,
        (None, Some(r)) if r > 0.0 && r <= 1.0 => r * largest,
        _ => {
            return Err(EmberError::bad_input(
                "give --flops MACS (positive) or --flops-ratio R in (0, 1]",
            ))
        }
    };
    let (mut lo, mut hi) = (0.0, 1.0);
    for _ in 0..STEPS {
        let mid = (lo + hi) / 2.0;
        if macs(&scaled(mid)) <= budget {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    let cfg = scaled(lo);
    if macs(&cfg) > budget {
        return Err(EmberError::bad_input(format!(
            "even one channel per layer exceeds the budget of {budget:.0} MACs"
        )));
    }
    let text = serde_json::to_string_pretty(&cfg).expect("configs serialise");
    std::fs::write(&args.out, text).map_err(|e| EmberError::io(&args.out, e))?;
    Ok(json!({
        "command": "bcnet-search uniform",
        "scale": lo,
        "widths": cfg.widths,
        "macs": macs(&cfg),
        "budget_macs": budget,
        "largest_macs": largest,
        "arch_config": args.out.display().to_string(),
    }))
}
