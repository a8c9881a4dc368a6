//! `bcnet-search`: width search with BCNet / BCNetV2 (arXiv 2203.13714). `train` trains a
//! bilaterally coupled (or left-only) supernet over a Channel-Bench-Macro network; `search`
//! evolves width vectors under a FLOPs budget with the supernet's scores; `score` scores
//! given ones; `bench` runs the evolution against Channel-Bench-Macro's ground truth and
//! ranks recorded supernet scores.

mod bench;
mod score;
mod search;
mod train;
mod trained;
mod uniform;

use clap::{Parser, Subcommand};
use ember_cli::RuntimeArgs;
use ember_core::Result;
use serde_json::Value;

pub use bench::BenchArgs;
pub use score::ScoreArgs;
pub use search::SearchArgs;
pub use train::{SupernetArgs, TrainArgs};
pub use uniform::UniformArgs;

/// Width search with bilaterally coupled supernets. Results go to stdout as one JSON line,
/// progress to stderr.
#[derive(Debug, Clone, Parser)]
#[command(name = "bcnet-search", version, about, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    pub runtime: RuntimeArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Train a width-search supernet (BCNet's left and right paths, or the left one only)
    /// over a Channel-Bench-Macro network; checkpointed and resumable (--resume DIR).
    Train(Box<TrainArgs>),
    /// Evolutionary search under a FLOPs budget with a trained supernet's scores; writes
    /// the winner as a model config for `ember train --arch cbm --model-config FILE`.
    Search(Box<SearchArgs>),
    /// The trained supernet's estimate of given or random width vectors.
    Score(Box<ScoreArgs>),
    /// The uniform-scaling baseline: every width scaled by the largest factor within the
    /// FLOPs budget, written as a model config.
    Uniform(UniformArgs),
    /// The search engine against Channel-Bench-Macro's ground truth (regret and percentile
    /// of the returned architecture vs random search), or the ranking quality of recorded
    /// supernet scores (--scores).
    Bench(BenchArgs),
}

pub fn run(cli: Cli) -> Result<Value> {
    match &cli.command {
        Command::Bench(args) => bench::run(args),
        Command::Uniform(args) => uniform::run(args),
        Command::Search(args) => {
            let (device, _) = cli.runtime.setup()?;
            search::run(args, cli.runtime.seed, &device)
        }
        Command::Score(args) => {
            let (device, _) = cli.runtime.setup()?;
            score::run(args, cli.runtime.seed, &device)
        }
        Command::Train(args) => {
            // The supernet trains in the pre-training loop, data-parallel under `ember
            // launch`: every rank draws the same sub-network at a step (seeded by the step).
            let (device, _) = cli.runtime.setup_parallel()?;
            let argv: Vec<String> = std::env::args().collect();
            let spec = train::spec(args, &cli.runtime, &argv)?;
            train::run(spec, &device, reparse_train)
        }
    }
}

/// A saved `train` command line (without the program name) back into its spec.
fn reparse_train(saved: &[String]) -> Result<ember_cli::pretrain::PretrainSpec<TrainArgs>> {
    ember_cli::pretrain::reparse_subcommand("bcnet-search", saved, |cli: &Cli, argv| {
        match &cli.command {
            Command::Train(args) => Some(train::spec(args, &cli.runtime, argv)),
            _ => None,
        }
    })
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        super::Cli::command().debug_assert();
    }
}
