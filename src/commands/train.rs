//! `ember train`: any registered model on any dataset, through `ember_cli::supervised`; a
//! resumed run re-parses its saved command line with `ember`'s parser.

use candle_core::Device;
use clap::Parser;
use ember_cli::supervised::{self, RunSpec};
use ember_cli::RuntimeArgs;
use ember_core::{EmberError, Result};
use serde_json::Value;

use crate::cli::{Cli, Command, TrainCommand};

/// The spec of an `ember train` command line (without the program name).
fn reparse(argv: &[String]) -> Result<RunSpec> {
    let cli = Cli::try_parse_from(std::iter::once("ember").chain(argv.iter().map(String::as_str)))
        .map_err(|e| EmberError::bad_input(e.kind().to_string()))?;
    match cli.command {
        Command::Train(cmd) => Ok(spec(&cmd, &cli.runtime)),
        _ => Err(EmberError::bad_input("not a training run")),
    }
}

fn spec(cmd: &TrainCommand, runtime: &RuntimeArgs) -> RunSpec {
    RunSpec {
        arch: cmd.arch.clone(),
        args: cmd.run.clone(),
        seed: runtime.seed,
        dtype: runtime.dtype(),
        threads: runtime.threads,
        argv: std::env::args().skip(1).collect(),
    }
}

pub fn run(cmd: &TrainCommand, device: &Device, runtime: &RuntimeArgs) -> Result<Value> {
    supervised::train(spec(cmd, runtime), device, reparse)
}
