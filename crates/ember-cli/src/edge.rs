use std::process::ExitCode;

use clap::Parser;
use ember_core::Result;
use serde_json::Value;

/// Parses the command line; a usage error is one line on stderr and exit code 2 (clap's own
/// message is several lines with a usage block), `--help` and `--version` print as usual.
pub fn parse_args<T: Parser>() -> std::result::Result<T, ExitCode> {
    parse_args_from(std::env::args_os())
}

/// [`parse_args`] of a given command line (the program name first).
pub fn parse_args_from<T: Parser, I: Into<std::ffi::OsString> + Clone>(
    argv: impl IntoIterator<Item = I>,
) -> std::result::Result<T, ExitCode> {
    match T::try_parse_from(argv) {
        Ok(args) => Ok(args),
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(
                e.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                let _ = e.print();
                return Err(
                    if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                        ExitCode::from(2)
                    } else {
                        ExitCode::SUCCESS
                    },
                );
            }
            let rendered = e.render().to_string();
            let mut lines = rendered.lines().map(str::trim).filter(|l| !l.is_empty());
            let first = lines.next().unwrap_or("invalid arguments");
            let first = first.strip_prefix("error: ").unwrap_or(first);
            // "the following required arguments were not provided:" names them below.
            let line = match (first.ends_with(':'), lines.next()) {
                (true, Some(what)) => format!("{first} {what}"),
                _ => first.to_string(),
            };
            eprintln!("error: {line} (see --help)");
            Err(ExitCode::from(2))
        }
    }
}

/// Runs `command`; its result goes to stdout as one JSON line (an array as one line per
/// element, e.g. one per image), an error to stderr as one line, and the exit code says
/// which (0, 2 for bad input, 1 for a runtime failure). In a data-parallel run only rank 0
/// prints the result, and the other ranks name themselves in their errors.
pub fn run(command: impl FnOnce() -> Result<Value>) -> ExitCode {
    let result = command();
    let world = ember_core::dist::world();
    match result {
        Ok(_) if !world.is_primary() => ExitCode::SUCCESS,
        Ok(Value::Array(items)) => print_lines(&items),
        Ok(value) => print_lines(&[value]),
        Err(e) => {
            let msg = e.to_string().replace('\n', " ");
            match world.is_distributed() {
                true => eprintln!("error: rank {}: {msg}", world.rank),
                false => eprintln!("error: {msg}"),
            }
            ExitCode::from(e.exit_code() as u8)
        }
    }
}

/// Writes one JSON line per value to stdout. A reader that closed the pipe early (`| head`)
/// is not an error: the lines it wanted were written.
fn print_lines(values: &[Value]) -> ExitCode {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    for v in values {
        match writeln!(out, "{v}") {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: writing the result: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}
