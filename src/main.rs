use std::process::ExitCode;

use ember::cli::{Cli, Command};
use ember::commands;

fn main() -> ExitCode {
    ember_cli::startup::configure();
    let cli: Cli = match ember_cli::parse_args() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    if let Command::Launch(cmd) = &cli.command {
        return commands::launch::run(cmd);
    }
    ember_cli::run(|| {
        // Training runs data-parallel under `ember launch`; everything else in one process.
        let (device, dtype) = match &cli.command {
            Command::Train(_) => cli.runtime.setup_parallel()?,
            _ => cli.runtime.setup()?,
        };
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
            Command::Launch(_) => unreachable!("ember launch returned above"),
        }
    })
}
