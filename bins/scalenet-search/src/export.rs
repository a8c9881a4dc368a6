//! `scalenet-search export`: one member of a searched family (`family.json`) as the model
//! config of a stand-alone ScaleNet, which `ember train --arch scalenet --model-config FILE`
//! trains from scratch. Without `-o` the config itself is the JSON line on stdout.

use std::path::PathBuf;

use clap::Args;
use ember_core::atomic::write_atomic;
use ember_core::{EmberError, Result};
use ember_models::scalenet::Plan;
use serde_json::{json, Value};

#[derive(Debug, Clone, Args)]
pub struct ExportArgs {
    /// family.json of `scalenet-search search`, or its folder.
    #[arg(long, value_name = "FILE|DIR")]
    pub family: PathBuf,
    /// The scaling stage: 0 is the base, s is 2^s times its FLOPs.
    #[arg(long)]
    pub scale: usize,
    /// Where to write the model config.
    #[arg(short = 'o', long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

pub fn run(args: &ExportArgs) -> Result<Value> {
    let path = if args.family.is_dir() {
        args.family.join("family.json")
    } else {
        args.family.clone()
    };
    let text = std::fs::read_to_string(&path).map_err(|e| EmberError::io(&path, e))?;
    let family: Value = serde_json::from_str(&text)
        .map_err(|e| EmberError::bad_input(format!("{}: {e}", path.display())))?;
    let members = family["members"].as_array().ok_or_else(|| {
        EmberError::bad_input(format!(
            "{}: no members (not a family.json)",
            path.display()
        ))
    })?;
    let member = members.get(args.scale).ok_or_else(|| {
        EmberError::bad_input(format!(
            "--scale {}: the family has stages 0..={}",
            args.scale,
            members.len().saturating_sub(1)
        ))
    })?;
    let plan: Plan = serde_json::from_value(member["plan"].clone()).map_err(|e| {
        EmberError::bad_input(format!("{}: member {}: {e}", path.display(), args.scale))
    })?;
    plan.validate().map_err(EmberError::bad_input)?;
    let config = serde_json::to_value(&plan).expect("plans serialise");
    match &args.out {
        None => Ok(config),
        Some(out) => {
            write_atomic(
                out,
                &serde_json::to_vec_pretty(&config).expect("JSON serialises"),
            )?;
            Ok(json!({
                "command": "scalenet-search export",
                "scale": args.scale,
                "macs": member["macs"],
                "params": member["params"],
                "resolution": plan.resolution,
                "arch_config": out.display().to_string(),
                "train_with": format!("ember train --arch scalenet --model-config {}", out.display()),
            }))
        }
    }
}
