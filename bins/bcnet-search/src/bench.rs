//! `bcnet-search bench`: how well a search or an estimator does on Channel-Bench-Macro,
//! whose 2 x 16384 architectures were all trained (three times each) by its authors.

use std::path::PathBuf;

use clap::Args;
use ember_core::{EmberError, Result};
use ember_search::cbm::{Benchmark, Family};
use ember_search::cbm_bench::{self, BenchConfig, Oracle, Outcome};
use ember_search::cbm_rank::{load_scores, rank_report, BUDGETS};
use ember_search::EvolutionConfig;
use serde_json::{json, Value};

#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// The benchmark's folder (Results_MobileNet.json, Results_ResNet.json), from
    /// xiusu/Channel-Bench-Macro.
    #[arg(long, env = "EMBER_CBM_DIR", value_name = "DIR")]
    pub benchmark: Option<PathBuf>,
    /// mobilenet, resnet, or both.
    #[arg(long, default_value = "both", value_parser = ["mobilenet", "resnet", "both"])]
    pub family: String,
    /// FLOPs budgets B as fractions of the family's largest network; the window is
    /// [0.8 B, B].
    #[arg(long, value_delimiter = ',', default_values_t = BUDGETS.to_vec())]
    pub budget: Vec<f64>,
    /// What a query returns: the mean of the three trainings (a clean oracle), or the
    /// first training's accuracy with the pick judged by the other two (seed noise).
    #[arg(long, default_value = "mean", value_parser = ["mean", "held-out-seed"])]
    pub oracle: String,
    /// Searches per budget, seeds 0..N.
    #[arg(long, default_value_t = 30)]
    pub seeds: u64,
    /// Evolution: candidates evaluated per generation.
    #[arg(long, default_value_t = 60)]
    pub population: usize,
    #[arg(long, default_value_t = 5)]
    pub generations: usize,
    #[arg(long, default_value_t = 10)]
    pub top_k: usize,
    /// Probability that a mutant redraws each width.
    #[arg(long, default_value_t = 0.1)]
    pub mutation_prob: f64,
    /// Rank these recorded score files (`{"Result": [{"subnet", "score"}]}`, e.g. the
    /// benchmark's supernet_scores/) against the benchmark instead of searching; needs
    /// --family mobilenet or resnet.
    #[arg(long, num_args = 1.., value_name = "FILE")]
    pub scores: Vec<PathBuf>,
}

impl BenchArgs {
    fn families(&self) -> Vec<Family> {
        match self.family.as_str() {
            "mobilenet" => vec![Family::MobileNet],
            "resnet" => vec![Family::ResNet],
            _ => Family::ALL.to_vec(),
        }
    }

    fn check(&self) -> Result<PathBuf> {
        let dir = self.benchmark.clone().ok_or_else(|| {
            EmberError::bad_input(
                "--benchmark DIR (or EMBER_CBM_DIR) must name Channel-Bench-Macro's folder of Results_*.json",
            )
        })?;
        if let Some(b) = self.budget.iter().find(|b| !(**b > 0.0 && **b <= 1.0)) {
            return Err(EmberError::bad_input(format!(
                "--budget {b}: a fraction of the largest FLOPs, in (0, 1]"
            )));
        }
        if self.seeds == 0 {
            return Err(EmberError::bad_input("--seeds must be positive"));
        }
        // The evolution's own settings are checked where they are built.
        EvolutionConfig::balanced(
            self.population,
            self.generations,
            self.top_k,
            self.mutation_prob,
            0,
        )?;
        if !self.scores.is_empty() && self.family == "both" {
            return Err(EmberError::bad_input(
                "--scores needs --family mobilenet or resnet (the files do not say)",
            ));
        }
        Ok(dir)
    }
}

pub fn run(args: &BenchArgs) -> Result<Value> {
    let dir = args.check()?;
    let mut results = Vec::new();
    for family in args.families() {
        let bench = Benchmark::load(&dir, family)?;
        if args.scores.is_empty() {
            results.extend(search(args, &bench)?);
        } else {
            for file in &args.scores {
                results.push(rank(&bench, file)?);
            }
        }
    }
    Ok(json!({ "command": "bcnet-search bench", "results": results }))
}

/// Evolution and random search at every budget.
fn search(args: &BenchArgs, bench: &Benchmark) -> Result<Vec<Value>> {
    let oracle = match args.oracle.as_str() {
        "held-out-seed" => Oracle::HeldOutSeed,
        _ => Oracle::Mean,
    };
    let evolution = EvolutionConfig::balanced(
        args.population,
        args.generations,
        args.top_k,
        args.mutation_prob,
        0,
    )?;
    let mut out = Vec::new();
    for &budget in &args.budget {
        let cfg = BenchConfig {
            evolution: evolution.clone(),
            queries: args.population * args.generations,
            seeds: args.seeds,
            budget,
            oracle,
        };
        let r = cbm_bench::run(bench, &cfg)?;
        eprintln!(
            "{} at {:.0}% FLOPs ({} architectures): median regret evolution {:.3}, random search {:.3} (points; {} seeds, {} queries)",
            bench.family.name(),
            budget * 100.0,
            r.window,
            r.evolution.median_regret,
            r.random.median_regret,
            args.seeds,
            cfg.queries
        );
        let outcome = |o: &Outcome| {
            json!({
                "median_regret": o.median_regret,
                "mean_regret": o.mean_regret,
                "median_percentile": o.median_percentile,
                "queries": o.queries,
            })
        };
        out.push(json!({
            "family": bench.family.name(),
            "budget": budget,
            "oracle": args.oracle,
            "window": r.window,
            "window_best": r.best,
            "seeds": args.seeds,
            "evolution": outcome(&r.evolution),
            "random_search": outcome(&r.random),
        }));
    }
    Ok(out)
}

/// A recorded estimator's rank agreement with the benchmark.
fn rank(bench: &Benchmark, file: &std::path::Path) -> Result<Value> {
    let r = rank_report(bench, &load_scores(file)?);
    if r.keys == 0 {
        return Err(EmberError::bad_input(format!(
            "{}: no architecture of the {} benchmark is scored",
            file.display(),
            bench.family.name()
        )));
    }
    eprintln!(
        "{}: Kendall {:.3}, Spearman {:.3}, Kendall without 1/4 widths {:.3}, within FLOPs bins {:.3} ({} architectures)",
        file.display(),
        r.kendall,
        r.spearman,
        r.kendall_reduced,
        r.kendall_binned,
        r.keys
    );
    let picks: Vec<Value> = r
        .picks
        .iter()
        .map(|p| json!({ "budget": p.budget, "arch": p.key, "mean": p.mean, "percentile": p.percentile, "window": p.window }))
        .collect();
    Ok(json!({
        "family": bench.family.name(),
        "scores": file.display().to_string(),
        "architectures": r.keys,
        "kendall": r.kendall,
        "spearman": r.spearman,
        "kendall_reduced": r.kendall_reduced,
        "kendall_binned": r.kendall_binned,
        "picks": picks,
    }))
}
