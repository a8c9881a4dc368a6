//! Architecture search for Ember's width and scaling searches (BCNet, ScaleNet): analytic
//! cost counting, the Channel-Bench-Macro spaces and result files, rank metrics between an
//! estimator and ground truth, and a seeded, replayable evolutionary search engine.

pub mod bcnet;
pub mod cbm;
pub mod cbm_bench;
pub mod cbm_rank;
pub mod evolution;
pub mod prior;
pub mod rank;
pub mod scalenet;
pub mod supernet;

pub use cbm::{Benchmark, Family, MacroSpace};
pub use ember_models::cost::{Cost, Counter};
pub use evolution::{evolve, random_search, EvolutionConfig, GeneSampler, Recorded, Uniform};
pub use rank::{kendall_tau_b, pearson, spearman};
