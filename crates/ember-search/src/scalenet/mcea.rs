//! ScaleNet's Markov-chain-based evolution (MCEA; the official
//! `core/sampler/evolution/evolution_sampler.py`): the state is a base model and one scaling
//! strategy (a depth, width and resolution index triple) per scaling stage, and each update
//! depends on the current state only.
//!
//! 1. Start: for each stage s, every grid triple whose scaled FLOPs stay near 2^s times the
//!    base's (on average over `n_basenet` random bases within the base budget) is scored
//!    as the mean over those bases; the best triple is the stage's strategy.
//! 2. `rounds` times: a GA over base models with the strategies fixed (fitness: the mean over
//!    stages 1.. of the scaled model's score, stage 0 left out; a scaled model off its FLOPs
//!    window scores `3 + relative gap`, a near-death penalty), then a grid search of each
//!    stage's strategy with the new base fixed.
//!
//! The GA is ember-search's evolution engine over base slots (top-k, mutation, crossover),
//! not pymoo's NSGA-Net operators; candidates outside the base budget or not in the
//! thermometer form are never evaluated (officially they score the penalty or are repaired).
//! Scores come from the caller (the super-supernet's top-1 in practice), as does caching:
//! the search is deterministic for a seed and a score function, so a killed search resumes
//! by running again with its recorded scores.

use ember_core::{EmberError, EmberRng, Result};
use ember_models::scalenet::flops::search_macs;
use ember_models::scalenet::{Space, Subnet};
use serde::{Deserialize, Serialize};

use super::sampling::base_within;
use crate::evolution::{evolve, EvolutionConfig, Uniform};

/// Which count decides the FLOPs windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MacsCount {
    /// The official search counter (floor sides at stride 2).
    Search,
    /// The network's exact count.
    Exact,
}

pub fn macs(space: &Space, subnet: &Subnet, count: MacsCount) -> f64 {
    match count {
        MacsCount::Search => search_macs(space, subnet) as f64,
        MacsCount::Exact => space.plan(subnet).cost().macs as f64,
    }
}

/// The FLOPs budget: base models within `base_error` of `target`; a stage-s model within
/// `error * 2^s` of 2^s times its base (`base_error` inside the base GA, `scale_error` in
/// the scaling grid, as officially 25M and 50M around 306M).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Budget {
    pub target: f64,
    pub base_error: f64,
    pub scale_error: f64,
    pub count: MacsCount,
}

impl Budget {
    pub fn macs(&self, space: &Space, subnet: &Subnet) -> f64 {
        macs(space, subnet, self.count)
    }

    pub fn base_ok(&self, space: &Space, base: &[Vec<usize>]) -> bool {
        (self.macs(space, &space.base_subnet(base)) - self.target).abs() <= self.base_error
    }

    /// How far stage `s` of `base` under `strategy` misses 2^s times the base's MACs.
    fn stage_gap(&self, space: &Space, base: &[Vec<usize>], s: usize, strategy: [usize; 3]) -> f64 {
        let scale = (1u64 << s) as f64;
        let base_macs = self.macs(space, &space.base_subnet(base));
        (self.macs(space, &space.scale_stage(base, s, strategy)) - scale * base_macs).abs()
    }

    /// Grid triples of stage `s` whose mean gap over `bases` is within `error * 2^s`.
    pub fn feasible_grid(
        &self,
        space: &Space,
        bases: &[Vec<Vec<usize>>],
        s: usize,
        error: f64,
    ) -> Vec<[usize; 3]> {
        let allowed = error * (1u64 << s) as f64;
        space.scaling[s]
            .grid()
            .into_iter()
            .filter(|&t| {
                let gaps: f64 = bases.iter().map(|b| self.stage_gap(space, b, s, t)).sum();
                gaps / bases.len() as f64 <= allowed
            })
            .collect()
    }

    /// The official penalty of a stage-s model of `macs` off its window.
    fn penalty(&self, s: usize, macs: f64) -> f64 {
        let want = self.target * (1u64 << s) as f64;
        3.0 + (want - macs) / want
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MceaConfig {
    pub budget: Budget,
    pub population: usize,
    pub generations: usize,
    pub top_k: usize,
    pub mutation_prob: f64,
    /// Random bases that score a strategy at the start.
    pub n_basenet: usize,
    /// Alternations of base search and scaling search (the official `admm_iter`).
    pub rounds: usize,
    pub seed: u64,
}

/// A family: the base model and a strategy per stage (stage 0's is `[0, 0, 0]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Family {
    pub base: Vec<Vec<usize>>,
    pub strategies: Vec<[usize; 3]>,
}

impl Family {
    /// Its model at scaling stage `s`.
    pub fn member(&self, space: &Space, s: usize) -> Subnet {
        space.scale_stage(&self.base, s, self.strategies[s])
    }
}

/// One update of the chain, for the record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    pub step: String,
    pub family: Family,
    /// The winner's score (a stage's strategy: its top-1; a base: its fitness).
    pub score: f64,
    /// Candidates the step scored.
    pub candidates: usize,
}

/// A sub-network's score; `stage` says which scaling stage it belongs to (for accounting).
pub type Score<'a> = dyn FnMut(usize, &Subnet) -> Result<f64> + 'a;

/// The base slots as GA genes: the first slot of a stage one of the kernels, the others
/// also 0 (skip).
fn gene_choices(space: &Space) -> Uniform {
    let k = space.kernels.len();
    let choices = space
        .stages
        .iter()
        .flat_map(|spec| {
            (0..spec.layers).map(move |j| {
                if j == 0 {
                    (1..=k).collect()
                } else {
                    (0..=k).collect()
                }
            })
        })
        .collect();
    Uniform { choices }
}

fn base_of(space: &Space, genes: &[usize]) -> Vec<Vec<usize>> {
    let mut at = 0;
    space
        .stages
        .iter()
        .zip(space.slots())
        .map(|(spec, n)| {
            let mut stage = genes[at..at + spec.layers].to_vec();
            at += spec.layers;
            stage.resize(n, 0);
            stage
        })
        .collect()
}

/// Runs MCEA. `on_step` sees every update as it happens.
pub fn mcea(
    space: &Space,
    cfg: &MceaConfig,
    score: &mut Score,
    on_step: &mut dyn FnMut(&Step),
) -> Result<Family> {
    let stages = space.scaled_stages();
    let b = &cfg.budget;
    let mut family = Family {
        base: Vec::new(),
        strategies: vec![[0, 0, 0]; stages + 1],
    };
    // 1. Each stage's strategy, averaged over random bases within budget.
    for s in 1..=stages {
        let mut rng = EmberRng::for_name(cfg.seed, &format!("mcea/start/{s}"));
        let bases = random_bases(space, cfg, &mut rng)?;
        let grid = nonempty(b.feasible_grid(space, &bases, s, b.scale_error), space, s)?;
        let best = best_triple(&grid, grid[0], |t| {
            let mut total = 0.0;
            for base in &bases {
                total += stage_score(space, b, base, s, t, b.scale_error, score)?;
            }
            Ok(total / bases.len() as f64)
        })?;
        family.strategies[s] = best.1;
        on_step(&Step {
            step: format!("start: stage {s} strategy"),
            family: family.clone(),
            score: best.0,
            candidates: grid.len(),
        });
    }
    // 2. Alternate the base GA and the scaling grid search.
    for round in 0..cfg.rounds {
        let strategies = family.strategies.clone();
        let found = evolve_base(space, cfg, round, &mut |base: &[Vec<usize>]| {
            let mut total = 0.0;
            for (s, &t) in strategies.iter().enumerate().skip(1) {
                total += stage_score(space, b, base, s, t, b.base_error, score)?;
            }
            Ok(total / stages as f64)
        })?;
        family.base = found.0;
        on_step(&Step {
            step: format!("round {round}: base"),
            family: family.clone(),
            score: found.1,
            candidates: found.2,
        });
        for s in 1..=stages {
            let grid = b.feasible_grid(space, std::slice::from_ref(&family.base), s, b.scale_error);
            // No feasible triple for this base keeps the stage's strategy.
            let best = best_triple(&grid, family.strategies[s], |t| {
                score(s, &space.scale_stage(&family.base, s, t))
            })?;
            family.strategies[s] = best.1;
            on_step(&Step {
                step: format!("round {round}: stage {s} strategy"),
                family: family.clone(),
                score: best.0,
                candidates: grid.len(),
            });
        }
    }
    Ok(family)
}

/// The best-scoring triple of `grid` and its score (`fallback` at minus infinity if the
/// grid is empty); the first of equal scores wins.
fn best_triple(
    grid: &[[usize; 3]],
    fallback: [usize; 3],
    mut eval: impl FnMut([usize; 3]) -> Result<f64>,
) -> Result<(f64, [usize; 3])> {
    let mut best = (f64::NEG_INFINITY, fallback);
    for &t in grid {
        let v = eval(t)?;
        if v > best.0 {
            best = (v, t);
        }
    }
    Ok(best)
}

/// The compound-scaling baseline's base: the GA with each base scored as itself (stage 0).
pub fn search_base_alone(
    space: &Space,
    cfg: &MceaConfig,
    score: &mut Score,
) -> Result<(Vec<Vec<usize>>, f64, usize)> {
    evolve_base(space, cfg, 0, &mut |base: &[Vec<usize>]| {
        score(0, &space.base_subnet(base))
    })
}

/// EfficientNet's compound rule at stage `s` (2^s times the FLOPs): depth `alpha^s`, width
/// `beta^s`, resolution `round(r0 gamma^s)`; alpha beta^2 gamma^2 ~ 2.
pub fn compound(space: &Space, base: &[Vec<usize>], s: usize, coefficients: [f64; 3]) -> Subnet {
    let [alpha, beta, gamma] = coefficients;
    let r0 = space.scaling[0].resolution[0] as f64;
    let phi = s as i32;
    space.scale(
        base,
        alpha.powi(phi),
        beta.powi(phi),
        (r0 * gamma.powi(phi)).round() as usize,
    )
}

/// EfficientNet's coefficients (alpha 1.2, beta 1.1, gamma 1.15).
pub const EFFICIENTNET: [f64; 3] = [1.2, 1.1, 1.15];

/// The GA over bases within budget; the best base, its fitness and the candidates scored.
fn evolve_base(
    space: &Space,
    cfg: &MceaConfig,
    round: usize,
    fitness: &mut dyn FnMut(&[Vec<usize>]) -> Result<f64>,
) -> Result<(Vec<Vec<usize>>, f64, usize)> {
    let evo = EvolutionConfig::balanced(
        cfg.population,
        cfg.generations,
        cfg.top_k,
        cfg.mutation_prob,
        cfg.seed.wrapping_add(round as u64),
    )?;
    let legal = |genes: &[usize]| {
        let base = base_of(space, genes);
        space.is_base(&base) && cfg.budget.base_ok(space, &base)
    };
    let result = evolve(&evo, &gene_choices(space), &legal, |genes| {
        fitness(&base_of(space, genes))
    })?;
    let best = result.best().ok_or_else(|| {
        EmberError::bad_input("the base search found no base within the FLOPs budget")
    })?;
    Ok((
        base_of(space, &best.genes),
        best.score,
        result.history.len(),
    ))
}

fn random_bases(
    space: &Space,
    cfg: &MceaConfig,
    rng: &mut EmberRng,
) -> Result<Vec<Vec<Vec<usize>>>> {
    let b = cfg.budget;
    let count = |sub: &Subnet| b.macs(space, sub);
    (0..cfg.n_basenet.max(1))
        .map(|_| {
            base_within(space, rng, &count, b.target, b.base_error, 100_000).ok_or_else(|| {
                EmberError::bad_input(format!(
                    "no base model within {} +- {} MACs: widen the budget",
                    b.target, b.base_error
                ))
            })
        })
        .collect()
}

fn nonempty(grid: Vec<[usize; 3]>, space: &Space, s: usize) -> Result<Vec<[usize; 3]>> {
    if grid.is_empty() {
        return Err(EmberError::bad_input(format!(
            "no strategy of scaling stage {s} ({} triples) keeps 2^{s} times the base FLOPs within the scale error: widen it",
            space.scaling[s].grid().len()
        )));
    }
    Ok(grid)
}

/// The score of `base` at stage `s` under `strategy`, or the penalty if it misses its window.
fn stage_score(
    space: &Space,
    b: &Budget,
    base: &[Vec<usize>],
    s: usize,
    strategy: [usize; 3],
    error: f64,
    score: &mut Score,
) -> Result<f64> {
    let sub = space.scale_stage(base, s, strategy);
    if b.stage_gap(space, base, s, strategy) > error * (1u64 << s) as f64 {
        return Ok(b.penalty(s, b.macs(space, &sub)));
    }
    score(s, &sub)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stand-in for a supernet: prefers 5x5 kernels in the base and wide, low-resolution
    /// scaling, so the chain has something to find.
    fn oracle(space: &Space) -> impl FnMut(usize, &Subnet) -> Result<f64> + '_ {
        move |_, sub: &Subnet| {
            let fives = sub.ops.iter().flatten().filter(|&&op| op == 2).count() as f64;
            let depth: usize = space.depths(&sub.ops).iter().sum();
            Ok(50.0 + fives + sub.width * 10.0 - sub.resolution as f64 * 0.1 - depth as f64 * 0.2)
        }
    }

    fn config() -> MceaConfig {
        MceaConfig {
            budget: Budget {
                target: 300_000.0,
                base_error: 30_000.0,
                scale_error: 45_000.0,
                count: MacsCount::Exact,
            },
            population: 8,
            generations: 3,
            top_k: 4,
            mutation_prob: 0.2,
            n_basenet: 3,
            rounds: 2,
            seed: 1,
        }
    }

    #[test]
    fn the_chain_stays_within_budget_and_is_deterministic() {
        let space = Space::fashion();
        let cfg = config();
        let run = || {
            let mut steps = Vec::new();
            let mut score = oracle(&space);
            let family = mcea(&space, &cfg, &mut score, &mut |s: &Step| {
                steps.push(s.clone())
            })
            .unwrap();
            (family, steps)
        };
        let (family, steps) = run();
        assert_eq!(run().0, family);
        // 2 start steps, then per round a base and 2 strategies.
        assert_eq!(steps.len(), 2 + 2 * 3);
        assert!(space.is_base(&family.base) && cfg.budget.base_ok(&space, &family.base));
        for s in 1..=2 {
            let grid = cfg.budget.feasible_grid(
                &space,
                std::slice::from_ref(&family.base),
                s,
                cfg.budget.scale_error,
            );
            assert!(grid.contains(&family.strategies[s]), "stage {s}");
        }
        // The oracle likes 5x5 kernels: the base found has more than a random one's half.
        let fives = family.base.iter().flatten().filter(|&&op| op == 2).count();
        let present = family.base.iter().flatten().filter(|&&op| op != 0).count();
        assert!(fives * 2 > present, "{:?}", family.base);
    }

    #[test]
    fn the_compound_rule_roughly_doubles_flops_per_stage() {
        let space = Space::fashion();
        let base = space.deepest_base();
        let m = |sub: &Subnet| macs(&space, sub, MacsCount::Exact);
        let b0 = m(&space.base_subnet(&base));
        let b1 = m(&compound(&space, &base, 1, EFFICIENTNET));
        let b2 = m(&compound(&space, &base, 2, EFFICIENTNET));
        assert!((1.5..2.6).contains(&(b1 / b0)), "{}", b1 / b0);
        assert!((3.0..5.2).contains(&(b2 / b0)), "{}", b2 / b0);
    }
}
