//! `maskd-distill`: masked distillation for segmentation (MasKD, arXiv 2205.14589) in three
//! commands. `tokens` learns the receptive tokens on a frozen teacher (stage 1); `distill`
//! trains a student with the tokens' masks on the teacher's logits (stage 2), or with a
//! baseline term (none, pixel-wise KD, DIST, unmasked MSE) for comparison; `masks` draws each
//! token's mask over test images. Stage 2's training, data, resume and checkpoints are
//! `ember train --task seg`'s (`ember_cli::supervised`).

mod masks;
mod objective;
mod teacher_data;
mod tokens;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use ember_cli::supervised::{self, Method, RunSpec, Setup, SupervisedArgs};
use ember_cli::teacher::{Teacher, TeacherLogits};
use ember_cli::RuntimeArgs;
use ember_core::{EmberError, Result};
use ember_train::CrossEntropy;
use serde_json::{json, Value};

pub use masks::MasksArgs;
pub use objective::{Distillation, Term};
pub use tokens::{load_tokens, TokensArgs};

/// MasKD for segmentation: learn receptive tokens on a teacher, distil a student with their
/// masks, look at the masks. Results go to stdout as one JSON line, progress to stderr.
#[derive(Debug, Clone, Parser)]
#[command(name = "maskd-distill", version, about, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    pub runtime: RuntimeArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Stage 1: learn the receptive tokens on the frozen teacher (CE on the masked logits +
    /// Dice between the masks); writes tokens.safetensors.
    Tokens(TokensArgs),
    /// Stage 2: train a student with CE + the chosen distillation term.
    Distill(Box<DistillCommand>),
    /// A PNG of each token's mask over test images, and their mean pairwise Dice.
    Masks(MasksArgs),
}

#[derive(Debug, Clone, Args)]
pub struct DistillCommand {
    /// The teacher: a segmentation checkpoint with the student's classes and input size.
    #[arg(long, value_name = "CKPT")]
    pub teacher: Option<String>,
    /// Student arch: a seg_* arch, or a ResNet as its backbone; --student-config JSON|FILE.
    #[arg(long, value_name = "ARCH")]
    pub student: Option<String>,
    /// none (labels only), kd (pixel-wise KD), dist (DIST's segmentation variant), mse (the
    /// MasKD regression without masks) or maskd (needs --tokens).
    #[arg(long, default_value = "maskd", value_parser = ["none", "kd", "dist", "mse", "maskd"])]
    pub loss: String,
    /// Stage 1's tokens (tokens.safetensors), for --loss maskd.
    #[arg(long, value_name = "FILE")]
    pub tokens: Option<PathBuf>,
    /// Weight of the distillation term (the official seg recipe: 1).
    #[arg(long, default_value_t = 1.0, value_name = "W")]
    pub kd_weight: f64,
    /// Temperature of --loss kd.
    #[arg(long, default_value_t = 1.0, value_name = "T")]
    pub tau: f64,
    /// Compute the teacher's logits of the training set once and reuse them every epoch
    /// (segmentation inputs are the same every epoch; the cache holds classes x (size/4)^2
    /// floats per canvas, 11 KB at 64 px).
    #[arg(long)]
    pub cache_teacher: bool,
    #[command(flatten)]
    pub run: SupervisedArgs,
}

fn parse_saved(argv: &[String]) -> Result<Cli> {
    Cli::try_parse_from(std::iter::once("maskd-distill").chain(argv.iter().map(String::as_str)))
        .map_err(|e| EmberError::bad_input(e.kind().to_string()))
}

pub fn run(cli: Cli) -> Result<Value> {
    // Distillation is the supervised loop, data-parallel under `ember launch`; learning
    // the tokens and drawing masks run in one process.
    let (device, _) = match cli.command {
        Command::Distill(_) => cli.runtime.setup_parallel()?,
        _ => cli.runtime.setup()?,
    };
    match &cli.command {
        Command::Tokens(args) => {
            let (args, argv) = match &args.resume {
                Some(dir) => {
                    let argv = supervised::saved_argv(&ember_core::RunDir::open(dir)?)?;
                    let Command::Tokens(mut saved) = parse_saved(&argv)?.command else {
                        return Err(EmberError::bad_input(format!(
                            "{} is not a stage-1 run",
                            dir.display()
                        )));
                    };
                    saved.resume = Some(dir.clone());
                    (saved, argv)
                }
                None => (args.clone(), std::env::args().skip(1).collect()),
            };
            tokens::run(&args, argv, cli.runtime.seed, &device)
        }
        Command::Masks(args) => masks::run(args, cli.runtime.seed, &device),
        Command::Distill(_) => distill(cli, &device),
    }
}

fn spec_of(cli: &Cli, argv: Vec<String>) -> Result<RunSpec> {
    let Command::Distill(cmd) = &cli.command else {
        return Err(EmberError::bad_input("not a distillation run"));
    };
    let arch = cmd
        .student
        .clone()
        .ok_or_else(|| EmberError::bad_input("--student ARCH is required (or --resume DIR)"))?;
    Ok(RunSpec {
        arch: Some(arch),
        args: cmd.run.clone(),
        seed: cli.runtime.seed,
        dtype: cli.runtime.dtype(),
        threads: cli.runtime.threads,
        argv,
    })
}

fn distill(cli: Cli, device: &candle_core::Device) -> Result<Value> {
    let resume = match &cli.command {
        Command::Distill(cmd) => cmd.run.resume.clone(),
        _ => None,
    };
    let (cli, argv) =
        supervised::resolve_command(cli, resume.as_deref(), parse_saved, |c, dir| {
            if let Command::Distill(cmd) = &mut c.command {
                cmd.run.resume = Some(dir)
            }
        })?;
    let Command::Distill(cmd) = &cli.command else {
        return Err(EmberError::bad_input("not a distillation run"));
    };
    let reparse = |argv: &[String]| spec_of(&parse_saved(argv)?, argv.to_vec());
    let prepare = |setup: &Setup| prepare(cmd, setup).map(Some);
    let mut result = supervised::train_with(spec_of(&cli, argv)?, device, reparse, prepare)?;
    result["command"] = Value::from("maskd-distill distill");
    Ok(result)
}

/// The teacher (loaded, checked, evaluated), the tokens, and the objective.
fn prepare(cmd: &DistillCommand, setup: &Setup) -> Result<Method> {
    if !setup.data.train.dense() {
        return Err(EmberError::bad_input(
            "maskd-distill distils segmentation: --data must be labelled per pixel (e.g. fashion-seg)",
        ));
    }
    if !(cmd.kd_weight.is_finite() && cmd.kd_weight >= 0.0 && cmd.tau > 0.0) {
        return Err(EmberError::bad_input(
            "--kd-weight must be >= 0 and --tau positive",
        ));
    }
    let mut report = json!({ "loss": cmd.loss, "kd_weight": cmd.kd_weight });
    // The tokens are read before the teacher is evaluated, so a bad --tokens fails at once.
    let classes = setup.data.classes.len();
    let term = match cmd.loss.as_str() {
        "kd" => {
            report["tau"] = json!(cmd.tau);
            Term::Kd { tau: cmd.tau }
        }
        "dist" => Term::Dist,
        "mse" => Term::Mse,
        "maskd" => {
            let path = cmd.tokens.as_ref().ok_or_else(|| {
                EmberError::bad_input(
                    "--loss maskd needs --tokens FILE (from `maskd-distill tokens`)",
                )
            })?;
            report["tokens"] = json!(path.display().to_string());
            Term::Maskd(Box::new(load_tokens(path, classes, setup.device)?))
        }
        _ => Term::None,
    };
    let cache = cmd.cache_teacher && cmd.loss != "none";
    report["cache_teacher"] = json!(cache);
    let teacher = match (&cmd.teacher, cmd.loss.as_str()) {
        (None, "none") => None,
        (None, loss) => {
            return Err(EmberError::bad_input(format!(
                "--loss {loss} needs --teacher CKPT"
            )))
        }
        (Some(spec), loss) => {
            let (teacher, eval) = Teacher::load_evaluated(spec, setup)?;
            let miou = eval.segmentation.as_ref().map(|s| s.miou).ok_or_else(|| {
                EmberError::bad_input(format!("--teacher {spec} is not a segmentation model"))
            })?;
            report["teacher"] = json!(spec);
            report["teacher_miou"] = json!(miou);
            match loss {
                // Measured for the record, not used.
                "none" => None,
                _ => Some(TeacherLogits::new(teacher, cache, setup)?),
            }
        }
    };
    Ok(Method {
        meta: vec![("distill".into(), report.to_string())],
        report,
        ..Method::with_objective(Box::new(Distillation {
            ce: CrossEntropy {
                smoothing: setup.settings.label_smoothing,
            },
            kd_weight: cmd.kd_weight,
            term,
            teacher,
        }))
    })
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        super::Cli::command().debug_assert();
    }
}
