//! `scalenet-search`: ScaleNet (arXiv 2207.07267). `train` trains the super-supernet that
//! holds every base model and every scaled version of it; `search` runs the Markov-chain
//! evolution (MCEA) over base models and per-stage scaling strategies, or the compound-
//! scaling baseline, and writes the family; `export` writes one member as a model config
//! for `ember train`; `plot` draws accuracy against FLOPs.

mod export;
mod plot;
mod search;
mod train;

use clap::{Parser, Subcommand};
use ember_cli::RuntimeArgs;
use ember_core::Result;
use serde_json::Value;

pub use export::ExportArgs;
pub use plot::PlotArgs;
pub use search::SearchArgs;
pub use train::TrainArgs;

/// Joint search of a base model and its scaling strategy. Results go to stdout as one JSON
/// line, progress to stderr.
#[derive(Debug, Clone, Parser)]
#[command(name = "scalenet-search", version, about, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    pub runtime: RuntimeArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Train the super-supernet (--arch scalenet_supernet_fashion or scalenet_supernet) with
    /// hierarchical sampling; checkpointed and resumable (--resume DIR).
    Train(Box<TrainArgs>),
    /// MCEA (or --baseline compound) with a trained super-supernet's scores; writes
    /// OUT/family.json: the base, a strategy per scale, each member's FLOPs and score.
    Search(Box<SearchArgs>),
    /// One member of a searched family as a model config for `ember train --arch scalenet
    /// --model-config FILE`.
    Export(ExportArgs),
    /// Accuracy against FLOPs, one line per family, as a PNG (from the points file of
    /// scripts/scalenet_table.py).
    Plot(PlotArgs),
}

pub fn run(cli: Cli) -> Result<Value> {
    match &cli.command {
        Command::Export(args) => export::run(args),
        Command::Plot(args) => plot::run(args),
        Command::Search(args) => {
            let (device, _) = cli.runtime.setup()?;
            search::run(args, cli.runtime.seed, &device)
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
    ember_cli::pretrain::reparse_subcommand("scalenet-search", saved, |cli: &Cli, argv| match &cli
        .command
    {
        Command::Train(args) => Some(train::spec(args, &cli.runtime, argv)),
        _ => None,
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
