//! `ressl-pretrain`: argument parsing only; the procedure is in the library.

use std::process::ExitCode;

fn main() -> ExitCode {
    ember_cli::startup::configure();
    let argv: Vec<String> = std::env::args().collect();
    let invocation = match ressl_pretrain::parse(&argv) {
        Ok(invocation) => invocation,
        Err(code) => return code,
    };
    ember_cli::run(|| ressl_pretrain::run(&invocation))
}
