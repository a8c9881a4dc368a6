//! `bcnet-search score`: the supernet's estimate of given (or random) width vectors, one
//! JSON line each: the bins, the channels, the MACs and the score (the mean re-calibrated
//! top-1 of its paths on the held-out images).

use clap::Args;
use ember_core::{EmberError, EmberRng, Result};
use serde_json::{json, Value};

use crate::trained::{parse_widths, SupernetFile};

#[derive(Debug, Clone, Args)]
pub struct ScoreArgs {
    #[command(flatten)]
    pub supernet: SupernetFile,
    /// A width vector as bins per variable (`8,8,6,4,4,2,8`); repeat the flag for more.
    #[arg(long, value_name = "BINS")]
    pub widths: Vec<String>,
    /// Also score this many uniformly drawn width vectors (seeded by --seed).
    #[arg(long, default_value_t = 0)]
    pub random: usize,
}

pub fn run(args: &ScoreArgs, seed: u64, device: &candle_core::Device) -> Result<Value> {
    let mut vectors = args
        .widths
        .iter()
        .map(|w| parse_widths(w))
        .collect::<Result<Vec<_>>>()?;
    if vectors.is_empty() && args.random == 0 {
        return Err(EmberError::bad_input(
            "give --widths BINS (repeatable) or --random N",
        ));
    }
    let trained = args.supernet.open(device)?;
    let mut rng = EmberRng::for_name(seed, "bcnet-search/score");
    vectors.extend((0..args.random).map(|_| trained.supernet.widths.sample(&mut rng)));
    let mut lines = Vec::with_capacity(vectors.len());
    for c in vectors {
        let config = trained.config_of(&c)?;
        let score = trained.score(&c)?;
        lines.push(json!({
            "command": "bcnet-search score",
            "bins": c,
            "widths": config.widths,
            "macs": config.cost(trained.side).macs,
            "score": score,
        }));
    }
    Ok(Value::Array(lines))
}
