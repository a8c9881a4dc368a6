//! A seeded evolutionary search over vectors of discrete choices, as BCNet's searcher does it
//! (spec section 2.7): each generation tops the population up with fresh legal candidates,
//! evaluates every member, keeps the global top-k, and breeds the next population from it
//! by mutation (each gene redrawn with a small probability) and uniform crossover. A
//! candidate is legal when a caller's predicate accepts it (e.g. a FLOPs window) and it was
//! never evaluated before, so every evaluation is a new architecture.
//!
//! The engine is deterministic for a seed and a fitness function, so a search is resumed by
//! running it again with the fitness answered from the recorded evaluations (see
//! [`Recorded`]). Random search at the same budget ([`random_search`]) is the baseline.

use std::collections::{HashMap, HashSet};

use ember_core::{EmberRng, Result};

/// Where a fresh gene value comes from: uniform over the gene's choices, or a learnt
/// distribution (BCNet's prior).
pub trait GeneSampler {
    /// A value for `gene`.
    fn draw(&self, gene: usize, rng: &mut EmberRng) -> usize;
    fn genes(&self) -> usize;
}

/// Every gene uniform over its own list of values.
#[derive(Debug, Clone, PartialEq)]
pub struct Uniform {
    pub choices: Vec<Vec<usize>>,
}

impl Uniform {
    /// `genes` genes, each over `lo..=hi`.
    pub fn range(genes: usize, lo: usize, hi: usize) -> Self {
        Self {
            choices: vec![(lo..=hi).collect(); genes],
        }
    }
}

impl GeneSampler for Uniform {
    fn draw(&self, gene: usize, rng: &mut EmberRng) -> usize {
        let c = &self.choices[gene];
        c[rng.below(c.len())]
    }
    fn genes(&self) -> usize {
        self.choices.len()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct EvolutionConfig {
    pub population: usize,
    pub generations: usize,
    pub top_k: usize,
    /// Mutants bred per generation.
    pub mutations: usize,
    /// Crossover children bred per generation.
    pub crossovers: usize,
    /// Probability that a mutant redraws each gene.
    pub mutation_prob: f64,
    pub seed: u64,
}

impl EvolutionConfig {
    /// A population bred half by mutation and half by crossover, as the official configs
    /// (25 + 25 of 50); bad input if a count is zero or the probability is not one.
    pub fn balanced(
        population: usize,
        generations: usize,
        top_k: usize,
        mutation_prob: f64,
        seed: u64,
    ) -> Result<Self> {
        if population == 0 || generations == 0 || top_k == 0 {
            return Err(ember_core::EmberError::bad_input(
                "--population, --generations and --top-k must be positive",
            ));
        }
        if !(0.0..=1.0).contains(&mutation_prob) {
            return Err(ember_core::EmberError::bad_input(
                "--mutation-prob must lie in [0, 1]",
            ));
        }
        Ok(Self {
            population,
            generations,
            top_k,
            mutations: population / 2,
            crossovers: population - population / 2,
            mutation_prob,
            seed,
        })
    }
}

impl Default for EvolutionConfig {
    /// BCNetV2's searcher (population 50, 20 generations, top-10, 25 mutants and 25
    /// children, gene mutation probability 0.1).
    fn default() -> Self {
        Self {
            population: 50,
            generations: 20,
            top_k: 10,
            mutations: 25,
            crossovers: 25,
            mutation_prob: 0.1,
            seed: 0,
        }
    }
}

/// One evaluated candidate.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluated {
    pub genes: Vec<usize>,
    pub score: f64,
    pub generation: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SearchResult {
    /// Every evaluation in order.
    pub history: Vec<Evaluated>,
    /// The best candidates, best first (at most top-k).
    pub top: Vec<Evaluated>,
}

impl SearchResult {
    pub fn best(&self) -> Option<&Evaluated> {
        self.top.first()
    }
}

/// Tries allowed per wanted mutant or child before a generation gives up on its quota (the
/// official searcher's 10x).
const TRIES_PER_CHILD: usize = 10;
/// Tries allowed per wanted random candidate: enough to fill a population from a window
/// holding a small share of the space (a tenth of Channel-Bench-Macro at 25% FLOPs).
const TRIES_PER_DRAW: usize = 1000;

/// The search. `legal` says whether a candidate may be evaluated (its FLOPs, say);
/// `fitness` scores one (higher is better).
pub fn evolve(
    cfg: &EvolutionConfig,
    sampler: &dyn GeneSampler,
    legal: &dyn Fn(&[usize]) -> bool,
    mut fitness: impl FnMut(&[usize]) -> Result<f64>,
) -> Result<SearchResult> {
    let mut rng = EmberRng::for_name(cfg.seed, "evolution");
    let mut seen: HashSet<Vec<usize>> = HashSet::new();
    let mut history = Vec::new();
    let mut top: Vec<Evaluated> = Vec::new();
    let mut population: Vec<Vec<usize>> = Vec::new();
    for generation in 0..cfg.generations {
        let wanted = cfg.population.saturating_sub(population.len());
        let fresh = breed(
            wanted,
            TRIES_PER_DRAW,
            &mut rng,
            &seen,
            &population,
            legal,
            |rng| (0..sampler.genes()).map(|g| sampler.draw(g, rng)).collect(),
        );
        population.extend(fresh);
        for genes in population.drain(..) {
            let score = fitness(&genes)?;
            seen.insert(genes.clone());
            let e = Evaluated {
                genes,
                score,
                generation,
            };
            history.push(e.clone());
            top.push(e);
        }
        // Stable: among equal scores the earlier evaluation stays ahead.
        top.sort_by(|a, b| b.score.total_cmp(&a.score));
        top.truncate(cfg.top_k);
        if generation + 1 == cfg.generations || top.is_empty() {
            break;
        }
        let mutants = breed(
            cfg.mutations,
            TRIES_PER_CHILD,
            &mut rng,
            &seen,
            &[],
            legal,
            |rng| {
                let parent = &top[rng.below(top.len())].genes;
                parent
                    .iter()
                    .enumerate()
                    .map(|(g, &v)| {
                        if rng.bernoulli(cfg.mutation_prob) {
                            sampler.draw(g, rng)
                        } else {
                            v
                        }
                    })
                    .collect()
            },
        );
        let children = breed(
            cfg.crossovers,
            TRIES_PER_CHILD,
            &mut rng,
            &seen,
            &mutants,
            legal,
            |rng| {
                let a = &top[rng.below(top.len())].genes;
                let b = &top[rng.below(top.len())].genes;
                a.iter()
                    .zip(b)
                    .map(|(&x, &y)| if rng.bernoulli(0.5) { x } else { y })
                    .collect()
            },
        );
        population = mutants;
        population.extend(children);
    }
    Ok(SearchResult { history, top })
}

/// Up to `wanted` new candidates from `make`: legal, never evaluated, not in `taken` and
/// distinct, within `tries` tries each.
fn breed(
    wanted: usize,
    tries: usize,
    rng: &mut EmberRng,
    seen: &HashSet<Vec<usize>>,
    taken: &[Vec<usize>],
    legal: &dyn Fn(&[usize]) -> bool,
    mut make: impl FnMut(&mut EmberRng) -> Vec<usize>,
) -> Vec<Vec<usize>> {
    let mut out: Vec<Vec<usize>> = Vec::with_capacity(wanted);
    for _ in 0..wanted * tries {
        if out.len() == wanted {
            break;
        }
        let c = make(rng);
        if !seen.contains(&c) && !taken.contains(&c) && !out.contains(&c) && legal(&c) {
            out.push(c);
        }
    }
    out
}

/// The baseline: `budget` distinct legal candidates drawn from `sampler`, the best kept.
pub fn random_search(
    budget: usize,
    seed: u64,
    sampler: &dyn GeneSampler,
    legal: &dyn Fn(&[usize]) -> bool,
    mut fitness: impl FnMut(&[usize]) -> Result<f64>,
) -> Result<SearchResult> {
    let mut rng = EmberRng::for_name(seed, "random-search");
    let picks = breed(
        budget,
        TRIES_PER_DRAW,
        &mut rng,
        &HashSet::new(),
        &[],
        legal,
        |rng| (0..sampler.genes()).map(|g| sampler.draw(g, rng)).collect(),
    );
    let mut history = Vec::with_capacity(picks.len());
    for genes in picks {
        let score = fitness(&genes)?;
        history.push(Evaluated {
            genes,
            score,
            generation: 0,
        });
    }
    let mut top = history.clone();
    top.sort_by(|a, b| b.score.total_cmp(&a.score));
    top.truncate(1);
    Ok(SearchResult { history, top })
}

/// A fitness answered from earlier evaluations where it has them, else by `inner` (whose
/// answers are kept): replaying a killed search with its recorded evaluations brings it
/// back to where it stopped without evaluating anything twice.
pub struct Recorded<F> {
    pub known: HashMap<Vec<usize>, f64>,
    pub inner: F,
}

impl<F: FnMut(&[usize]) -> Result<f64>> Recorded<F> {
    pub fn score(&mut self, genes: &[usize]) -> Result<f64> {
        if let Some(&s) = self.known.get(genes) {
            return Ok(s);
        }
        let s = (self.inner)(genes)?;
        self.known.insert(genes.to_vec(), s);
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A smooth toy objective over 6 genes in 1..=8: the closer to (5, 3, 7, 2, 8, 4), the
    /// better; legal when the sum is at most 30.
    fn toy(g: &[usize]) -> f64 {
        let target = [5, 3, 7, 2, 8, 4];
        -g.iter()
            .zip(target)
            .map(|(&a, b)| (a as f64 - b as f64).powi(2))
            .sum::<f64>()
    }

    fn small() -> EvolutionConfig {
        EvolutionConfig {
            population: 20,
            generations: 8,
            top_k: 5,
            mutations: 10,
            crossovers: 10,
            mutation_prob: 0.2,
            seed: 1,
        }
    }

    #[test]
    fn finds_the_optimum_of_a_toy_problem_and_never_repeats_or_breaks_the_rules() {
        let sampler = Uniform::range(6, 1, 8);
        let legal = |g: &[usize]| g.iter().sum::<usize>() <= 30;
        let r = evolve(&small(), &sampler, &legal, |g| Ok(toy(g))).unwrap();
        let best = r.best().unwrap();
        assert!(best.score >= -2.0, "{best:?}");
        let unique: HashSet<_> = r.history.iter().map(|e| e.genes.clone()).collect();
        assert_eq!(
            unique.len(),
            r.history.len(),
            "no candidate evaluated twice"
        );
        assert!(r.history.iter().all(|e| legal(&e.genes)));
        assert!(r.history.len() <= 20 * 8);
    }

    #[test]
    fn a_seed_gives_one_search_and_recorded_evaluations_replay_it() {
        let sampler = Uniform::range(6, 1, 8);
        let legal = |_: &[usize]| true;
        let a = evolve(&small(), &sampler, &legal, |g| Ok(toy(g))).unwrap();
        let b = evolve(&small(), &sampler, &legal, |g| Ok(toy(g))).unwrap();
        assert_eq!(a, b);
        let other = EvolutionConfig { seed: 2, ..small() };
        assert_ne!(
            a.history,
            evolve(&other, &sampler, &legal, |g| Ok(toy(g)))
                .unwrap()
                .history
        );

        // Half the evaluations recorded: the replay asks the real fitness for the rest only.
        let known: HashMap<_, _> = a.history[..a.history.len() / 2]
            .iter()
            .map(|e| (e.genes.clone(), e.score))
            .collect();
        let mut calls = 0;
        let mut rec = Recorded {
            known,
            inner: |g: &[usize]| {
                calls += 1;
                Ok(toy(g))
            },
        };
        let replay = evolve(&small(), &sampler, &legal, |g| rec.score(g)).unwrap();
        assert_eq!(replay, a);
        assert_eq!(calls, a.history.len() - a.history.len() / 2);
    }

    #[test]
    fn random_search_spends_its_budget_on_distinct_legal_candidates() {
        let sampler = Uniform::range(6, 1, 8);
        let legal = |g: &[usize]| g[0] > 2;
        let r = random_search(50, 0, &sampler, &legal, |g| Ok(toy(g))).unwrap();
        assert_eq!(r.history.len(), 50);
        assert!(r.history.iter().all(|e| e.genes[0] > 2));
        let best = r.history.iter().map(|e| e.score).fold(f64::MIN, f64::max);
        assert_eq!(r.best().unwrap().score, best);
    }
}
