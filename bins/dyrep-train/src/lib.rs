//! `dyrep-train`: a conv net trained with DyRep (arXiv 2203.12868), which grows Diverse
//! Branch Blocks on the convolutions whose importance is highest and cuts the branches that
//! stop mattering, or with every convolution re-parameterised from the start (RepVGG / DBB
//! baselines), or plain. Training, data, resume and checkpoints are `ember train`'s
//! (`ember_cli::supervised`); the structure rides in the checkpoint's model config, so a
//! resumed run continues with the structure it had. `dyrep-train deploy` folds a checkpoint
//! into the plain network.

pub mod deploy;
pub mod evolve;
mod recipe;
pub mod structure_plot;

use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use clap::{Parser, Subcommand};
use ember_cli::supervised::{self, Method, RunSpec, Setup, SupervisedArgs};
use ember_cli::RuntimeArgs;
use ember_core::{EmberError, Result, RunDir, SeededVarMap};
use ember_models::rep::{Branches, RepPlan};
use ember_models::ModelConfig;
use ember_train::CrossEntropy;
use serde_json::{json, Value};

pub use evolve::{DyRep, Evolution};
pub use recipe::{DyRepArgs, Mode};

/// Train a conv net with DyRep (or RepVGG / DBB re-parameterisation, or plain), then
/// `dyrep-train deploy CKPT --out FILE` for the merged plain network. Results go to stdout as
/// one JSON line, progress to stderr; the run directory holds metrics, curves.png,
/// structure.png and checkpoints.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "dyrep-train",
    version,
    about,
    max_term_width = 100,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub runtime: RuntimeArgs,
    #[command(flatten)]
    pub dyrep: DyRepArgs,
    #[command(flatten)]
    pub run: SupervisedArgs,
}

#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Fold every block of a checkpoint into one convolution (its bias into the next BN):
    /// the plain network's checkpoint, for `ember eval` / `ember predict`.
    Deploy {
        /// A dyrep-train checkpoint (best.safetensors or last.safetensors).
        checkpoint: PathBuf,
        /// Where to write the deployed checkpoint.
        #[arg(long)]
        out: PathBuf,
        /// A plain network's checkpoint to time against (same input size).
        #[arg(long, value_name = "CKPT")]
        compare: Option<PathBuf>,
    },
}

fn parse_saved(argv: &[String]) -> Result<Cli> {
    Cli::try_parse_from(std::iter::once("dyrep-train").chain(argv.iter().map(String::as_str)))
        .map_err(|e| EmberError::bad_input(e.kind().to_string()))
}

fn spec(cli: &Cli, argv: Vec<String>) -> Result<RunSpec> {
    Ok(RunSpec {
        arch: Some(cli.dyrep.arch.clone()),
        args: cli.run.clone(),
        seed: cli.runtime.seed,
        dtype: cli.runtime.dtype(),
        threads: cli.runtime.threads,
        argv,
    })
}

/// Every growable top-level convolution of `cfg`'s model as a block of `branches`; an error
/// when the model has none.
fn reparameterise(cfg: &mut ModelConfig, branches: Option<Branches>) -> Result<()> {
    let probe = SeededVarMap::new(0);
    let model = ember_models::build(
        &cfg.family,
        &cfg.config,
        probe.var_builder(DType::F32, &Device::Cpu),
    )?;
    let sites: Vec<String> = model
        .rep_sites()
        .into_iter()
        .filter(|s| s.conv.shape().can_grow())
        .map(|s| s.conv.path().to_string())
        .collect();
    if sites.is_empty() {
        return Err(EmberError::bad_input(format!(
            "{} has no re-parameterisable convolutions (dyrep-train needs a conv net such as resnet)",
            cfg.family
        )));
    }
    if let Some(b) = branches {
        let plan = RepPlan::everywhere(sites.iter().map(String::as_str), b);
        cfg.config = evolve::with_plan(&cfg.config, &plan);
    }
    Ok(())
}

pub fn run(cli: Cli) -> Result<Value> {
    if let Some(Command::Deploy {
        checkpoint,
        out,
        compare,
    }) = &cli.command
    {
        return deploy::deploy(checkpoint, out, compare.as_deref());
    }
    let (device, _) = cli.runtime.setup_parallel()?;
    let resume = cli.run.resume.clone();
    let (cli, argv) =
        supervised::resolve_command(cli, resume.as_deref(), parse_saved, |c, dir| {
            c.run.resume = Some(dir)
        })?;
    let args = &cli.dyrep;
    let mode = args.mode;
    let evolution = args.evolution(cli.run.train.epochs)?;
    let blocks = match mode {
        Mode::Repvgg => Some(args.branches_or(Branches::REPVGG)?),
        Mode::Dbb => Some(args.branches_or(Branches::DBB)?),
        Mode::Plain | Mode::Dyrep => None,
    };
    let mut report = json!({ "mode": format!("{mode:?}").to_lowercase() });
    if mode == Mode::Dyrep {
        report["grow_interval"] = json!(evolution.interval);
        report["max_adjust_epoch"] = json!(evolution.max_adjust_epoch);
        report["importance"] = json!(args.importance);
        report["branches"] = json!(evolution.branches.flags());
        report["recal_iters"] = json!(evolution.recal_iters);
    }
    if let Some(b) = blocks {
        report["branches"] = json!(b.flags());
    }
    let reparse = |argv: &[String]| spec(&parse_saved(argv)?, argv.to_vec());
    let prepare = |setup: &Setup| -> Result<Option<Method>> {
        let mut method = Method::with_objective(Box::new(CrossEntropy {
            smoothing: setup.settings.label_smoothing,
        }));
        method.meta = vec![("dyrep".into(), report.to_string())];
        method.report = report.clone();
        if mode != Mode::Plain {
            method.configure = Some(Box::new(move |cfg: &mut ModelConfig| {
                reparameterise(cfg, blocks)
            }));
        }
        if mode == Mode::Dyrep {
            method.structure = Some(Box::new(DyRep::new(evolution)));
        }
        Ok(Some(method))
    };
    let mut result = supervised::train_with(spec(&cli, argv)?, &device, reparse, prepare)?;
    result["command"] = Value::from("dyrep-train");
    if let Some(dir) = result["run_dir"].as_str() {
        let run = RunDir::open(Path::new(dir))?;
        if structure_plot::draw(&run)? {
            result["structure_png"] = json!(run.file("structure.png").display().to_string());
        }
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        super::Cli::command().debug_assert();
    }
}
