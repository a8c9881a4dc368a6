//! `taylorse-enhance`: argument parsing only; the procedures are in the library.

use std::process::ExitCode;

fn main() -> ExitCode {
    ember_cli::startup::configure();
    let cli = match ember_cli::parse_args_from(std::env::args()) {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    ember_cli::run(|| taylorse_enhance::run(cli))
}
