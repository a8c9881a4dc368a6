//! How well an estimator (a supernet, a proxy, a recorded score file) ranks Channel-Bench-
//! Macro's architectures against their mean accuracy, as the benchmark's README tabulates it:
//! Kendall tau-b and Spearman over every scored key, Kendall over the reduced space (no width
//! at 1/4, BCNetV2's), Kendall averaged inside 10 equal-count FLOPs bins (what is left once
//! "bigger is better" is taken out), and each budget's pick: the top-scored architecture
//! with FLOPs in [0.8 B, B], its mean accuracy and its percentile in that window.

use std::collections::HashMap;
use std::path::Path;

use ember_core::{EmberError, Result};
use serde::Deserialize;

use crate::cbm::{parse_key, Benchmark};
use crate::rank::{kendall_tau_b, spearman};

/// The top-scored architecture of one FLOPs window.
#[derive(Debug, Clone, PartialEq)]
pub struct Pick {
    /// B as a fraction of the family's largest FLOPs.
    pub budget: f64,
    pub key: String,
    /// Its mean accuracy (ground truth).
    pub mean: f64,
    /// Share (%) of the window's architectures with a mean at or below the pick's.
    pub percentile: f64,
    /// Architectures in the window.
    pub window: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RankReport {
    pub keys: usize,
    pub kendall: f64,
    pub spearman: f64,
    /// Keys without a 1 (no layer at a quarter width).
    pub kendall_reduced: f64,
    pub kendall_binned: f64,
    pub picks: Vec<Pick>,
}

/// FLOPs windows [0.8 B, B]: the budgets B of the benchmark's README, as fractions of the
/// largest network's FLOPs.
pub const BUDGETS: [f64; 3] = [0.25, 0.5, 0.75];
const BINS: usize = 10;

/// Scores every key of `scores` that the benchmark has.
pub fn rank_report(bench: &Benchmark, scores: &HashMap<String, f64>) -> RankReport {
    let mut keys: Vec<&String> = scores
        .keys()
        .filter(|k| bench.records.contains_key(*k))
        .collect();
    keys.sort();
    let tau = |ks: &[&String]| {
        let x: Vec<f64> = ks.iter().map(|k| scores[*k]).collect();
        let y: Vec<f64> = ks.iter().map(|k| bench.records[*k].mean).collect();
        (kendall_tau_b(&x, &y), spearman(&x, &y))
    };
    let (kendall, spearman) = tau(&keys);
    let reduced: Vec<&String> = keys.iter().copied().filter(|k| !k.contains('1')).collect();
    let mut by_flops = keys.clone();
    by_flops.sort_by_key(|k| bench.records[*k].flops);
    let n = by_flops.len();
    let kendall_binned = (0..BINS)
        .map(|b| tau(&by_flops[b * n / BINS..(b + 1) * n / BINS]).0)
        .sum::<f64>()
        / BINS as f64;
    let picks = BUDGETS
        .iter()
        .filter_map(|&budget| pick(bench, &keys, |k| scores[k], budget))
        .collect();
    RankReport {
        keys: n,
        kendall,
        spearman,
        kendall_reduced: tau(&reduced).0,
        kendall_binned,
        picks,
    }
}

/// The largest FLOPs of the benchmark (the widest network's).
pub fn max_flops(bench: &Benchmark) -> u64 {
    bench.records.values().map(|r| r.flops).max().unwrap_or(0)
}

/// Whether `flops` lies in the window of `budget` (a fraction of `max`).
pub fn in_window(flops: u64, max: u64, budget: f64) -> bool {
    let b = max as f64 * budget;
    (0.8 * b..=b).contains(&(flops as f64))
}

/// Among `keys` (sorted: ties go to the first), the top-scored one in the window.
fn pick(
    bench: &Benchmark,
    keys: &[&String],
    score: impl Fn(&str) -> f64,
    budget: f64,
) -> Option<Pick> {
    let max = max_flops(bench);
    let window: Vec<&String> = keys
        .iter()
        .copied()
        .filter(|k| in_window(bench.records[*k].flops, max, budget))
        .collect();
    let best = window
        .iter()
        .copied()
        .reduce(|a, b| if score(b) > score(a) { b } else { a })?;
    let mean = bench.records[best].mean;
    let at_or_below = window
        .iter()
        .filter(|k| bench.records[**k].mean <= mean)
        .count();
    Some(Pick {
        budget,
        key: best.clone(),
        mean,
        percentile: 100.0 * at_or_below as f64 / window.len() as f64,
        window: window.len(),
    })
}

#[derive(Deserialize)]
struct ScoreFile {
    #[serde(rename = "Result")]
    result: Vec<ScoreEntry>,
}

#[derive(Deserialize)]
struct ScoreEntry {
    subnet: u64,
    score: f64,
}

/// A recorded score file of the official searcher (`{"Result": [{"Num", "subnet", "score"}]}`),
/// by key.
pub fn load_scores(path: &Path) -> Result<HashMap<String, f64>> {
    let bad = |e: &dyn std::fmt::Display| EmberError::bad_input(format!("{}: {e}", path.display()));
    let text = std::fs::read_to_string(path).map_err(|e| bad(&e))?;
    let file: ScoreFile = serde_json::from_str(&text).map_err(|e| bad(&e))?;
    file.result
        .into_iter()
        .map(|e| {
            let key = e.subnet.to_string();
            parse_key(&key).map_err(|err| bad(&err))?;
            Ok((key, e.score))
        })
        .collect()
}
