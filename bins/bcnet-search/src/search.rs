//! `bcnet-search search`: BCNet's evolutionary search with a trained supernet as the
//! fitness, under a FLOPs budget F (every candidate's MACs in [0.8 F, F]), its initial
//! population and mutations drawn from BCNet's prior when the training run's loss records
//! are at hand. Each evaluation
//! is appended to `OUT/evaluations.jsonl` as it is made; the search is deterministic for a
//! seed, so running the same command again replays the recorded evaluations and continues
//! where a killed search stopped. The winner is written as a model config, `OUT/arch.json`,
//! that `ember train --arch cbm --model-config OUT/arch.json` trains from scratch.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Args;
use ember_core::{EmberError, Result};
use ember_search::evolution::{Evaluated, Recorded};
use ember_search::prior::{ExpectedMacs, Prior, PriorSettings};
use ember_search::{evolve, EvolutionConfig, GeneSampler, Uniform};
use serde_json::{json, Value};

use crate::trained::{out_dir, SupernetFile};

#[derive(Debug, Clone, Args)]
pub struct SearchArgs {
    #[command(flatten)]
    pub supernet: SupernetFile,
    /// The FLOPs budget F in multiply-accumulates per image.
    #[arg(long, value_name = "MACS", conflicts_with = "flops_ratio")]
    pub flops: Option<f64>,
    /// The FLOPs budget as a fraction of the largest sub-network's.
    #[arg(long, value_name = "R")]
    pub flops_ratio: Option<f64>,
    /// Candidates evaluated per generation (the spec's Fashion-MNIST scale: 16-20; the
    /// official ImageNet search: 50).
    #[arg(long, default_value_t = 20)]
    pub population: usize,
    #[arg(long, default_value_t = 8)]
    pub generations: usize,
    #[arg(long, default_value_t = 5)]
    pub top_k: usize,
    /// Probability that a mutant redraws each width.
    #[arg(long, default_value_t = 0.1)]
    pub mutation_prob: f64,
    /// Draw the initial population and mutations uniformly, not from BCNet's prior (which
    /// needs the training run's loss records: --supernet RUN_DIR).
    #[arg(long)]
    pub no_prior: bool,
    /// Folder for evaluations.jsonl, arch.json and search.json [default:
    /// runs/bcnet-search-<unix time>]; an existing one is continued.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

const EVALUATIONS: &str = "evaluations.jsonl";

pub fn run(args: &SearchArgs, seed: u64, device: &candle_core::Device) -> Result<Value> {
    let cfg = EvolutionConfig::balanced(
        args.population,
        args.generations,
        args.top_k,
        args.mutation_prob,
        seed,
    )?;
    let trained = args.supernet.open(device)?;
    let max = trained.max_macs()? as f64;
    let budget = match (args.flops, args.flops_ratio) {
        (Some(f), None) if f > 0.0 => f,
        (None, Some(r)) if r > 0.0 && r <= 1.0 => r * max,
        _ => {
            return Err(EmberError::bad_input(
                "give --flops MACS (positive) or --flops-ratio R in (0, 1]",
            ))
        }
    };
    let dir = out_dir(&args.out, "bcnet-search");
    std::fs::create_dir_all(&dir).map_err(|e| EmberError::io(&dir, e))?;
    let log = dir.join(EVALUATIONS);
    let known = recorded(&log)?;
    if !known.is_empty() {
        eprintln!(
            "continuing: {} evaluations recorded in {}",
            known.len(),
            log.display()
        );
    }
    let widths = &trained.supernet.widths;
    let (lo, hi) = widths.range();
    let bins: Vec<usize> = (lo..=hi).collect();
    let uniform = Uniform {
        choices: vec![bins.clone(); widths.variables()],
    };
    let prior = if args.no_prior || trained.records.is_empty() {
        None
    } else {
        let side = trained.side;
        let expected = ExpectedMacs::new(widths.variables(), |w| {
            trained.model.cost_with(w, side).macs as f64
        });
        let bin = |l: usize| (widths.maxima[l] / widths.bins) as f64;
        // The middle of the window [0.8 F, F]: the count is exact, so no compensation factor.
        Some(Prior::fit(
            &trained.records,
            &bins,
            widths.variables(),
            |l, c| c as f64 * bin(l),
            &expected,
            0.9 * budget,
            &PriorSettings::default(),
            seed,
        ))
    };
    let sampler: &dyn GeneSampler = match &prior {
        Some(p) => p,
        None => &uniform,
    };
    let legal = |c: &[usize]| {
        trained
            .macs(c)
            .is_ok_and(|m| (0.8 * budget..=budget).contains(&(m as f64)))
    };
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .map_err(|e| EmberError::io(&log, e))?;
    let mut fitness = Recorded {
        known,
        inner: |c: &[usize]| {
            let score = trained.score(c)?;
            let line = json!({ "bins": c, "score": score, "macs": trained.macs(c)? });
            writeln!(file, "{line}").map_err(|e| EmberError::io(&log, e))?;
            eprintln!("{c:?}: {score:.2}%");
            Ok(score)
        },
    };
    let result = evolve(&cfg, sampler, &legal, |c| fitness.score(c))?;
    let best = result.best().ok_or_else(|| {
        EmberError::bad_input(format!(
            "no width vector has its MACs in [0.8 F, F] for F = {budget:.0} (the largest sub-network has {max:.0})"
        ))
    })?;
    let arch = trained.config_of(&best.genes)?;
    let arch_file = dir.join("arch.json");
    write_json(
        &arch_file,
        &serde_json::to_value(&arch).expect("configs serialise"),
    )?;
    let entry = |e: &Evaluated| -> Result<Value> {
        Ok(json!({
            "bins": e.genes,
            "widths": trained.config_of(&e.genes)?.widths,
            "macs": trained.macs(&e.genes)?,
            "score": e.score,
        }))
    };
    let summary = json!({
        "command": "bcnet-search search",
        "supernet": args.supernet.supernet,
        "budget_macs": budget,
        "largest_macs": max,
        "evaluations": result.history.len(),
        "prior": prior.as_ref().map(|p| &p.probs),
        "best": entry(best)?,
        "top": result.top.iter().map(entry).collect::<Result<Vec<_>>>()?,
        "arch_config": arch_file.display().to_string(),
        "train_with": format!("ember train --arch cbm --model-config {}", arch_file.display()),
        "out": dir.display().to_string(),
    });
    write_json(&dir.join("search.json"), &summary)?;
    Ok(summary)
}

/// The evaluations a previous run of the search recorded.
fn recorded(log: &Path) -> Result<HashMap<Vec<usize>, f64>> {
    let Ok(text) = std::fs::read_to_string(log) else {
        return Ok(HashMap::new());
    };
    let mut known = HashMap::new();
    // A kill can cut the last line short: it is evaluated again.
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        if let (Ok(c), Some(s)) = (
            serde_json::from_value::<Vec<usize>>(v["bins"].clone()),
            v["score"].as_f64(),
        ) {
            known.insert(c, s);
        }
    }
    Ok(known)
}

/// Writes JSON through a temporary file renamed into place.
fn write_json(path: &Path, value: &Value) -> Result<()> {
    let tmp = path.with_extension("json.tmp");
    let text = serde_json::to_string_pretty(value).expect("JSON serialises");
    std::fs::write(&tmp, text).map_err(|e| EmberError::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| EmberError::io(path, e))
}
