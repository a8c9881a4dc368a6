//! `scalenet-search search`: MCEA over base models and scaling strategies with a trained
//! super-supernet's scores, or the compound-scaling baseline (`--baseline compound`: the
//! base searched by its own stage-0 score, scaled by EfficientNet's fixed rule).
//!
//! A sub-network's score is its top-1 on a held-out tail of the training set, each batch
//! normalised by its own statistics, with the logits of a left and a right pass summed (the
//! official evaluation; it depends on `--eval-batch`, officially 64). Each new score is
//! appended to `OUT/evaluations.jsonl`; the search is deterministic for a seed, so the same
//! command again replays the recorded scores and continues where a killed search stopped.
//! `OUT/family.json` holds the base, a strategy per scale and every member's FLOPs (both
//! counts), supernet score and layer plan (`export` turns one into a model config).

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{DType, Device};
use clap::Args;
use ember_core::atomic::write_atomic;
use ember_core::{EmberError, Result, SeededVarMap};
use ember_models::scalenet::flops::search_macs;
use ember_models::scalenet::{Space, Subnet, SuperSupernet};
use ember_search::scalenet::mcea::{
    self, Budget, Family, MacsCount, MceaConfig, Step, EFFICIENTNET,
};
use ember_search::supernet::{open_supernet, HeldOut, ScoringData};
use serde_json::{json, Value};

#[derive(Debug, Clone, Args)]
pub struct SearchArgs {
    /// The trained super-supernet: the run folder of `scalenet-search train` (its
    /// backbone.safetensors) or the file itself (a path or hf://...).
    #[arg(long, value_name = "DIR|CKPT")]
    pub supernet: String,
    /// The data the super-supernet was trained on (see `ember train --help`).
    #[arg(long, default_value = "fashion-mnist")]
    pub data: String,
    /// Training images held out at the end of the training set, on which each
    /// sub-network's top-1 is measured.
    #[arg(long, default_value_t = 1000)]
    pub holdout: usize,
    /// Images per batch-statistics evaluation batch (the official 64 per GPU).
    #[arg(long, default_value_t = 64)]
    pub eval_batch: usize,
    /// The base model's FLOPs target in multiply-accumulates (the official 306e6 for the
    /// ImageNet space; the spec's Fashion-MNIST space: 0.3 MMACs).
    #[arg(long, default_value_t = 300_000.0, value_name = "MACS")]
    pub target: f64,
    /// Base models within this many MACs of the target (official: 25e6).
    #[arg(long, default_value_t = 30_000.0, value_name = "MACS")]
    pub base_error: f64,
    /// A stage-s strategy is feasible within 2^s times this of 2^s times the base's MACs
    /// (official: 50e6).
    #[arg(long, default_value_t = 45_000.0, value_name = "MACS")]
    pub scale_error: f64,
    /// Which count decides the windows: exact (the network's) or search (the official
    /// counter, whose stride-2 sides round down).
    #[arg(long, default_value = "exact", value_parser = ["exact", "search"])]
    pub count: String,
    /// Base models per GA generation (official: 64).
    #[arg(long, default_value_t = 12)]
    pub population: usize,
    /// GA generations per base search (official: 40).
    #[arg(long, default_value_t = 5)]
    pub generations: usize,
    #[arg(long, default_value_t = 6)]
    pub top_k: usize,
    /// Probability that a mutant redraws each base slot.
    #[arg(long, default_value_t = 0.1)]
    pub mutation_prob: f64,
    /// Random bases that score each strategy at the start (official: 20).
    #[arg(long, default_value_t = 4)]
    pub n_basenet: usize,
    /// Alternations of base search and scaling search (official `admm_iter`: 8).
    #[arg(long, default_value_t = 2)]
    pub rounds: usize,
    /// compound: search the base by its own (stage-0) score only and scale it with
    /// EfficientNet's rule (depth 1.2^s, width 1.1^s, resolution 1.15^s).
    #[arg(long, value_parser = ["compound"])]
    pub baseline: Option<String>,
    /// Folder for evaluations.jsonl, steps.json and family.json; an existing one is
    /// continued.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

const EVALUATIONS: &str = "evaluations.jsonl";

/// A recorded score and the seconds it took.
#[derive(Debug, Clone, Copy)]
struct Record {
    score: f64,
    seconds: f64,
    stage: usize,
}

pub fn run(args: &SearchArgs, seed: u64, device: &Device) -> Result<Value> {
    let started = Instant::now();
    let (net, data) = open(args, device)?;
    let space = net.space().clone();
    let cfg = MceaConfig {
        budget: Budget {
            target: args.target,
            base_error: args.base_error,
            scale_error: args.scale_error,
            count: if args.count == "search" {
                MacsCount::Search
            } else {
                MacsCount::Exact
            },
        },
        population: args.population,
        generations: args.generations,
        top_k: args.top_k,
        mutation_prob: args.mutation_prob,
        n_basenet: args.n_basenet,
        rounds: args.rounds,
        seed,
    };
    if !(args.target > 0.0 && args.base_error > 0.0 && args.scale_error > 0.0) {
        return Err(EmberError::bad_input(
            "--target, --base-error and --scale-error must be positive",
        ));
    }
    std::fs::create_dir_all(&args.out).map_err(|e| EmberError::io(&args.out, e))?;
    let log = args.out.join(EVALUATIONS);
    let mut known = recorded(&log)?;
    if !known.is_empty() {
        eprintln!(
            "continuing: {} evaluations recorded in {}",
            known.len(),
            log.display()
        );
    }
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .map_err(|e| EmberError::io(&log, e))?;
    // Every counter at phase 0: the two passes of an evaluation are all-left and all-right.
    for l in net.laterals() {
        l.set_phase(0);
    }
    let mut score = |stage: usize, sub: &Subnet| -> Result<f64> {
        let key = key_of(sub);
        if let Some(r) = known.get(&key) {
            return Ok(r.score);
        }
        let t = Instant::now();
        let top1 = data.top1(|x| net.evaluation_logits(x, sub))?;
        let record = Record {
            score: top1,
            seconds: t.elapsed().as_secs_f64(),
            stage,
        };
        let line = json!({ "key": key, "stage": stage, "score": top1, "seconds": record.seconds });
        writeln!(file, "{line}").map_err(|e| EmberError::io(&log, e))?;
        eprintln!("stage {stage} {key}: {top1:.2}%");
        known.insert(key, record);
        Ok(top1)
    };
    let mut steps: Vec<Step> = Vec::new();
    let steps_file = args.out.join("steps.json");
    let mut on_step = |s: &Step| {
        eprintln!(
            "{}: score {:.2} over {} candidates",
            s.step, s.score, s.candidates
        );
        steps.push(s.clone());
        let text = serde_json::to_vec_pretty(&steps).expect("steps serialise");
        if let Err(e) = write_atomic(&steps_file, &text) {
            eprintln!("warning: {e}");
        }
    };
    let stages = space.scaled_stages();
    let (method, members) = match args.baseline.as_deref() {
        Some(_) => {
            let (base, fitness, candidates) = mcea::search_base_alone(&space, &cfg, &mut score)?;
            on_step(&Step {
                step: "base at stage 0".into(),
                family: Family {
                    base: base.clone(),
                    strategies: vec![[0, 0, 0]; stages + 1],
                },
                score: fitness,
                candidates,
            });
            let members: Vec<Subnet> = (0..=stages)
                .map(|s| mcea::compound(&space, &base, s, EFFICIENTNET))
                .collect();
            ("compound", members)
        }
        None => {
            let family = mcea::mcea(&space, &cfg, &mut score, &mut on_step)?;
            let members = (0..=stages).map(|s| family.member(&space, s)).collect();
            ("mcea", members)
        }
    };
    let base_macs = cfg.budget.macs(&space, &members[0]);
    let mut listed = Vec::new();
    for (s, sub) in members.iter().enumerate() {
        let plan = space.plan(sub);
        let exact = plan.cost();
        listed.push(json!({
            "stage": s,
            "depth": space.depths(&sub.ops),
            "width": sub.width,
            "resolution": sub.resolution,
            "macs": exact.macs,
            "params": exact.params,
            "search_counter_macs": search_macs(&space, sub),
            "macs_over_base": cfg.budget.macs(&space, sub) / base_macs,
            "supernet_top1": score(s, sub)?,
            "subnet": sub,
            "plan": plan,
        }));
    }
    // Scoring time by scaling stage, over every evaluation this search made (also those
    // recorded by an earlier, killed run of it).
    let mut per_stage = vec![(0usize, 0.0f64); stages + 1];
    for r in known.values() {
        per_stage[r.stage.min(stages)].0 += 1;
        per_stage[r.stage.min(stages)].1 += r.seconds;
    }
    let family = json!({
        "command": "scalenet-search search",
        "method": method,
        "supernet": args.supernet,
        "budget": cfg.budget,
        "search": cfg,
        "space": space,
        "members": listed,
        "evaluations": known.len(),
        "evaluations_by_stage": per_stage.iter().map(|p| p.0).collect::<Vec<_>>(),
        "evaluation_seconds_by_stage": per_stage.iter().map(|p| p.1).collect::<Vec<_>>(),
        "evaluation_seconds": per_stage.iter().map(|p| p.1).sum::<f64>(),
        "wall_seconds_this_run": started.elapsed().as_secs_f64(),
    });
    let path = args.out.join("family.json");
    write_atomic(
        &path,
        &serde_json::to_vec_pretty(&family).expect("JSON serialises"),
    )?;
    Ok(json!({
        "command": "scalenet-search search",
        "method": method,
        "family": path.display().to_string(),
        "evaluations": known.len(),
        "members": family["members"].as_array().map(|m| m.iter().map(|m| json!({
            "stage": m["stage"], "macs": m["macs"], "supernet_top1": m["supernet_top1"],
        })).collect::<Vec<_>>()),
        "export_with": format!("scalenet-search export --family {} --scale N -o arch.json", path.display()),
    }))
}

/// The super-supernet of a training run or file, and the held-out images it scores on.
fn open(args: &SearchArgs, device: &Device) -> Result<(SuperSupernet, ScoringData)> {
    let (ckpt, info) = open_supernet(&args.supernet, "scalenet", "scalenet-search", device)?;
    let what = format!("--supernet {}", args.supernet);
    let bad = |detail: &str| EmberError::bad_input(format!("{what}: {detail}"));
    let space: Space = serde_json::from_value(ckpt.meta.config.clone())
        .map_err(|e| bad(&format!("its space: {e}")))?;
    space.validate().map_err(|e| bad(&e))?;
    let lateral = if info["coupling"] == "left" { 1 } else { 2 };
    let vars = SeededVarMap::new(0);
    let net = SuperSupernet::new(&space, lateral, vars.var_builder(DType::F32, device))?;
    ember_models::load_into(vars.vars(), &ckpt.tensors, &what)?;
    let split = HeldOut {
        data: args.data.clone(),
        holdout: args.holdout,
        calibration_batches: 0,
        batch_size: args.eval_batch,
    };
    let (data, _) = split.load(&ckpt.meta, &what, device)?;
    Ok((net, data))
}

/// A sub-network's record key: its ops, width and resolution.
fn key_of(sub: &Subnet) -> String {
    serde_json::to_string(sub).expect("sub-networks serialise")
}

/// The scores an earlier run of the search recorded.
fn recorded(log: &Path) -> Result<HashMap<String, Record>> {
    let Ok(text) = std::fs::read_to_string(log) else {
        return Ok(HashMap::new());
    };
    // A kill can cut the last line short: it is evaluated again.
    let mut known = HashMap::new();
    for v in text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
    {
        if let (Some(key), Some(score), Some(stage)) =
            (v["key"].as_str(), v["score"].as_f64(), v["stage"].as_u64())
        {
            let seconds = v["seconds"].as_f64().unwrap_or(0.0);
            known.insert(
                key.to_string(),
                Record {
                    score,
                    seconds,
                    stage: stage as usize,
                },
            );
        }
    }
    Ok(known)
}
