//! `bcnet-search`: width search with BCNet / BCNetV2 (arXiv 2203.13714). This version
//! ships `bench`, which runs Ember's evolutionary search against Channel-Bench-Macro's
//! ground truth and ranks recorded supernet scores; supernet training, search with a
//! supernet and scoring come with the next commands.

mod bench;

use clap::{Parser, Subcommand};
use ember_core::Result;
use serde_json::Value;

pub use bench::BenchArgs;

/// Width search with bilaterally coupled supernets. Results go to stdout as one JSON line,
/// progress to stderr.
#[derive(Debug, Clone, Parser)]
#[command(name = "bcnet-search", version, about, max_term_width = 100)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// The search engine against Channel-Bench-Macro's ground truth (regret and percentile
    /// of the returned architecture vs random search), or the ranking quality of recorded
    /// supernet scores (--scores).
    Bench(BenchArgs),
}

pub fn run(cli: Cli) -> Result<Value> {
    match cli.command {
        Command::Bench(args) => bench::run(&args),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        super::Cli::command().debug_assert();
    }
}
