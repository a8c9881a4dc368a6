//! The search engine run against Channel-Bench-Macro's ground truth (spec section 3.3): in
//! a FLOPs window [0.8 B, B], with a query budget, over many seeds, how far the returned
//! architecture falls below the window's best (regret, in accuracy points) and where it
//! ranks in the window (percentile), next to random search with the same budget.
//!
//! Two oracles: `mean` answers each query with the benchmark's mean accuracy (the search
//! machinery alone, P1); `held-out-seed` answers with the first training's accuracy and
//! judges the pick by the mean of the other two (what seed noise alone costs, P2).

use std::collections::HashMap;

use ember_core::Result;

use crate::cbm::{parse_key, Benchmark};
use crate::cbm_rank::{in_window, max_flops};
use crate::evolution::{evolve, random_search, EvolutionConfig, SearchResult, Uniform};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Oracle {
    Mean,
    HeldOutSeed,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BenchConfig {
    /// The evolution's settings (its seed is replaced by each run's).
    pub evolution: EvolutionConfig,
    /// Random search's queries (the evolution's are population x generations at most).
    pub queries: usize,
    pub seeds: u64,
    /// B as a fraction of the family's largest FLOPs.
    pub budget: f64,
    pub oracle: Oracle,
}

/// One method over every seed.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub median_regret: f64,
    pub mean_regret: f64,
    pub median_percentile: f64,
    /// Queries per run, averaged.
    pub queries: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BenchReport {
    pub budget: f64,
    /// Architectures in the window.
    pub window: usize,
    /// The window's best ground truth.
    pub best: f64,
    pub evolution: Outcome,
    pub random: Outcome,
}

pub fn run(bench: &Benchmark, cfg: &BenchConfig) -> Result<BenchReport> {
    let max = max_flops(bench);
    let (mut query, mut truth) = (HashMap::new(), HashMap::new());
    for (key, r) in &bench.records {
        let genes = parse_key(key)?;
        let (q, t) = match cfg.oracle {
            Oracle::Mean => (r.mean, r.mean),
            Oracle::HeldOutSeed => (
                r.acc[0],
                r.acc[1..].iter().sum::<f64>() / (r.acc.len() - 1) as f64,
            ),
        };
        query.insert(genes.clone(), q);
        truth.insert(genes, t);
    }
    let window: Vec<f64> = bench
        .records
        .iter()
        .filter(|(_, r)| in_window(r.flops, max, cfg.budget))
        .map(|(k, _)| truth[&parse_key(k).expect("checked above")])
        .collect();
    let best = window.iter().copied().fold(f64::MIN, f64::max);
    let sampler = Uniform::range(7, 1, 4);
    let legal = |g: &[usize]| {
        bench
            .get(g)
            .is_some_and(|r| in_window(r.flops, max, cfg.budget))
    };
    let fitness = |g: &[usize]| Ok(query[g]);
    let judge = |runs: &[SearchResult]| {
        let picks: Vec<f64> = runs
            .iter()
            .map(|r| r.best().map_or(f64::NAN, |b| truth[&b.genes]))
            .collect();
        let regrets: Vec<f64> = picks.iter().map(|p| best - p).collect();
        let percentiles: Vec<f64> = picks
            .iter()
            .map(|p| 100.0 * window.iter().filter(|t| *t <= p).count() as f64 / window.len() as f64)
            .collect();
        Outcome {
            median_regret: median(&regrets),
            mean_regret: regrets.iter().sum::<f64>() / regrets.len() as f64,
            median_percentile: median(&percentiles),
            queries: runs.iter().map(|r| r.history.len()).sum::<usize>() as f64 / runs.len() as f64,
        }
    };
    let (mut evolved, mut random) = (Vec::new(), Vec::new());
    for seed in 0..cfg.seeds {
        let evo = EvolutionConfig {
            seed,
            ..cfg.evolution.clone()
        };
        evolved.push(evolve(&evo, &sampler, &legal, fitness)?);
        random.push(random_search(cfg.queries, seed, &sampler, &legal, fitness)?);
    }
    Ok(BenchReport {
        budget: cfg.budget,
        window: window.len(),
        best,
        evolution: judge(&evolved),
        random: judge(&random),
    })
}

pub fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}
