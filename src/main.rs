use std::process::ExitCode;

use ember::cli::{Cli, Command};
use ember::commands;

fn main() -> ExitCode {
    ember_cli::startup::configure();
    let cli: Cli = match ember_cli::parse_args() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    ember_cli::run(|| {
        let (device, dtype) = cli.runtime.setup()?;
        match &cli.command {
            Command::Train(cmd) => commands::train::run(cmd, &device, &cli.runtime),
            Command::Eval(cmd) => commands::eval::run(cmd, &device, dtype),
            Command::Predict(cmd) => commands::predict::run(cmd, &device, dtype),
            Command::Info(cmd) => commands::info::run(cmd),
            Command::LinearEval(cmd) => {
                commands::linear_eval::run(cmd, &device, dtype, cli.runtime.seed)
            }
            Command::Pull(cmd) => commands::pull::run(cmd),
            Command::Data(cmd) => commands::data::run(cmd),
        }
    })
}
