//! `taylorse-enhance`: TaylorSENet (arXiv 2205.00206) speech enhancement. `train` learns from
//! clean speech and noise mixed on the fly; `enhance` cleans audio files or a WAV piped
//! through stdin/stdout; `eval` scores a test corpus before and after enhancement.

mod corpus;
mod enhance;
mod eval;
mod frontend;
mod mixer;
mod model;
mod plot;
mod train;

use clap::{Parser, Subcommand};
use ember_cli::RuntimeArgs;
use ember_core::{EmberError, Result};
use serde_json::Value;

pub use enhance::EnhanceArgs;
pub use eval::EvalArgs;
pub use train::TrainArgs;

/// Speech enhancement with TaylorSENet. Results go to stdout as JSON lines, progress to stderr.
#[derive(Debug, Clone, Parser)]
#[command(name = "taylorse-enhance", version, about, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    pub runtime: RuntimeArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Train on DIR/clean + DIR/noise mixed on the fly; checkpointed, resumable (--resume DIR).
    Train(Box<TrainArgs>),
    /// Enhance audio files into a folder, or stdin to stdout (-o -); 16 kHz WAV out.
    Enhance(EnhanceArgs),
    /// SI-SDR, STOI and ESTOI of noisy and enhanced test mixtures at each SNR, as JSON.
    Eval(EvalArgs),
}

pub fn run(cli: Cli) -> Result<Value> {
    let (device, dtype) = cli.runtime.setup()?;
    if dtype != candle_core::DType::F32 {
        return Err(EmberError::bad_input(format!(
            "taylorse-enhance runs in f32 only (its STFT features and the official fixtures are f32); --dtype {} is not supported",
            cli.runtime.dtype
        )));
    }
    match &cli.command {
        Command::Train(args) => train::run(args, cli.runtime.seed, &device),
        Command::Enhance(args) => enhance::run(args, &device),
        Command::Eval(args) => eval::run(args, cli.runtime.seed, &device),
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
