//! `greenmim-pretrain`: argument parsing only; the procedure is in the library.

use std::process::ExitCode;

fn main() -> ExitCode {
    ember_cli::startup::configure();
    let argv: Vec<String> = std::env::args().collect();
    let invocation = match greenmim_pretrain::parse(&argv) {
        Ok(invocation) => invocation,
        Err(code) => return code,
    };
    ember_cli::run(|| greenmim_pretrain::run(&invocation))
}
