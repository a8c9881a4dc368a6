//! `lightvit-train`: LightViT trained from scratch or fine-tuned from a checkpoint
//! (`--init`, a path or `hf://`), with the official recipe scaled by presets. Presets are
//! flags placed before the user's own, so every hyperparameter stays overridable and a
//! resumed run re-expands the preset it was started with.

mod presets;

use std::process::ExitCode;

use clap::Parser;
use ember_cli::supervised::{self, model_overrides, RunSpec, SupervisedArgs};
use ember_cli::{preset, RuntimeArgs};
use ember_core::{EmberError, Result};
use serde_json::Value;

pub use presets::PRESETS;

/// Train, fine-tune and evaluate LightViT. Results go to stdout as one JSON line, progress
/// to stderr; the run directory holds metrics, curves.png and checkpoints.
#[derive(Debug, Parser)]
#[command(
    name = "lightvit-train",
    version,
    about,
    max_term_width = 100,
    args_override_self = true
)]
pub struct Cli {
    #[command(flatten)]
    pub runtime: RuntimeArgs,
    /// Recipe to start from: fashion-mnist (the default), imagenet (the official ImageNet-1K
    /// recipe) or quick (a minute on the bundled subset). Later flags override its values;
    /// `lightvit-train --show-preset NAME` prints its flags.
    #[arg(long, default_value = "fashion-mnist", value_parser = preset::names(PRESETS))]
    pub preset: String,
    /// Print the flags of a preset and exit.
    #[arg(long, value_name = "NAME", value_parser = preset::names(PRESETS))]
    pub show_preset: Option<String>,
    /// LightViT arch: lightvit (any config), lightvit_tiny, lightvit_small, lightvit_base,
    /// lightvit_tiny_32, lightvit_tiny_64, lightvit_nano_32 [default: the preset's].
    #[arg(long)]
    pub arch: Option<String>,
    /// Stochastic depth: the last block's drop-path rate (rates grow linearly from 0).
    #[arg(long, value_name = "RATE")]
    pub drop_path: Option<f64>,
    #[command(flatten)]
    pub run: SupervisedArgs,
}

const TOOL: preset::Presets = preset::Presets {
    tool: "lightvit-train",
    list: PRESETS,
    default: "fashion-mnist",
};

pub type Invocation = preset::Invocation<Cli>;

/// Parses `argv` (the program name first) with its preset expanded; errors are one line
/// and exit code 2.
pub fn parse(argv: &[String]) -> std::result::Result<Invocation, ExitCode> {
    TOOL.parse(argv)
}

/// The run the flags describe (`expanded`: the command line with the preset written out);
/// `--drop-path` goes into the model config.
fn spec(cli: &Cli, expanded: &[String]) -> Result<RunSpec> {
    let mut args = cli.run.clone();
    if let Some(rate) = cli.drop_path {
        let mut overrides = match model_overrides(&args.model_config)? {
            Value::Null => Value::Object(Default::default()),
            v => v,
        };
        overrides["drop_path_rate"] = Value::from(rate);
        args.model_config = Some(overrides.to_string());
    }
    let arch = cli.arch.clone().unwrap_or_else(|| "lightvit".into());
    let family = ember_models::resolve(&arch, &Value::Null)?.family;
    if family != "lightvit" {
        return Err(EmberError::bad_input(format!(
            "--arch {arch} is a {family}; lightvit-train trains LightViT (use `ember train` for others)"
        )));
    }
    Ok(RunSpec {
        arch: Some(arch),
        args,
        seed: cli.runtime.seed,
        dtype: cli.runtime.dtype(),
        threads: cli.runtime.threads,
        argv: expanded.iter().skip(1).cloned().collect(),
    })
}

pub fn run(invocation: &Invocation) -> Result<Value> {
    let cli = &invocation.cli;
    if let Some(name) = &cli.show_preset {
        return Ok(preset::show(PRESETS, name));
    }
    let (device, _) = cli.runtime.setup_parallel()?;
    // A resumed run reports the preset it was started with.
    let preset = std::cell::RefCell::new(cli.preset.clone());
    let reparse = |argv: &[String]| {
        let saved: Invocation = TOOL.reparse(argv)?;
        preset.replace(saved.cli.preset.clone());
        spec(&saved.cli, &saved.expanded)
    };
    let mut summary = supervised::train(spec(cli, &invocation.expanded)?, &device, reparse)?;
    summary["command"] = Value::from("lightvit-train");
    summary["preset"] = Value::from(preset.into_inner());
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        super::Cli::command().debug_assert();
    }
}
