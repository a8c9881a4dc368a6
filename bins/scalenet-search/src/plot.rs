//! `scalenet-search plot`: accuracy against FLOPs, one line per family, from a JSON file
//! `{"title": ..., "series": [{"name": ..., "points": [[mmacs, top1], ...]}, ...]}` (what
//! `scripts/scalenet_table.py` writes beside its table).

use std::path::PathBuf;

use clap::Args;
use ember_core::plot::{draw_points, Panel, Series};
use ember_core::{EmberError, Result};
use serde_json::{json, Value};

#[derive(Debug, Clone, Args)]
pub struct PlotArgs {
    /// The points file.
    #[arg(long, value_name = "FILE")]
    pub points: PathBuf,
    /// The PNG to write.
    #[arg(short = 'o', long, value_name = "FILE")]
    pub out: PathBuf,
}

pub fn run(args: &PlotArgs) -> Result<Value> {
    let text =
        std::fs::read_to_string(&args.points).map_err(|e| EmberError::io(&args.points, e))?;
    let bad = |e: &str| EmberError::bad_input(format!("{}: {e}", args.points.display()));
    let v: Value = serde_json::from_str(&text).map_err(|e| bad(&e.to_string()))?;
    let series = v["series"]
        .as_array()
        .ok_or_else(|| bad("no \"series\" list"))?
        .iter()
        .map(|s| {
            let points = serde_json::from_value::<Vec<(f64, f64)>>(s["points"].clone())
                .map_err(|e| bad(&format!("points: {e}")))?;
            Ok(Series {
                name: s["name"].as_str().unwrap_or("?").to_string(),
                points,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let panel = Panel {
        title: v["title"].as_str().unwrap_or("top-1 vs FLOPs").to_string(),
        y_label: v["y_label"].as_str().unwrap_or("test top-1 %").to_string(),
        series,
    };
    draw_points(&args.out, &panel, v["x_label"].as_str().unwrap_or("MMACs"))?;
    Ok(json!({ "command": "scalenet-search plot", "png": args.out.display().to_string() }))
}
