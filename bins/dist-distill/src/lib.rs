//! `dist-distill`: a student classifier distilled from a frozen teacher checkpoint with DIST
//! (arXiv 2205.10536), or with vanilla KD or labels only as baselines. Training, data, resume
//! and checkpoints are `ember train`'s (`ember_cli::supervised`); this crate adds the
//! teacher, its checks and cache, and the objective. The student checkpoint records the
//! teacher and the loss (`ember.distill`) and works with `ember eval` / `ember predict`.

mod objective;
mod recipe;

use clap::Parser;
use ember_cli::supervised::{self, Method, RunSpec, Setup, SupervisedArgs};
use ember_cli::RuntimeArgs;
use ember_core::{EmberError, Result};
use ember_train::CrossEntropy;
use serde_json::{json, Value};

pub use ember_cli::teacher::{self, Cache, Teacher, TeacherLogits};
pub use objective::Distillation;
pub use recipe::{DistillArgs, Recipe, Term};

/// Distil a student from a teacher checkpoint with DIST (or KD, or labels only). Results go
/// to stdout as one JSON line, progress to stderr; the run directory holds metrics,
/// curves.png and checkpoints.
#[derive(Debug, Clone, Parser)]
#[command(name = "dist-distill", version, about, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    pub runtime: RuntimeArgs,
    #[command(flatten)]
    pub distill: DistillArgs,
    #[command(flatten)]
    pub run: SupervisedArgs,
}

fn parse_saved(argv: &[String]) -> Result<Cli> {
    Cli::try_parse_from(std::iter::once("dist-distill").chain(argv.iter().map(String::as_str)))
        .map_err(|e| EmberError::bad_input(e.kind().to_string()))
}

fn spec(cli: &Cli, argv: Vec<String>) -> Result<RunSpec> {
    let arch = cli
        .distill
        .student
        .clone()
        .ok_or_else(|| EmberError::bad_input("--student ARCH is required (or --resume DIR)"))?;
    Ok(RunSpec {
        arch: Some(arch),
        args: cli.run.clone(),
        seed: cli.runtime.seed,
        dtype: cli.runtime.dtype(),
        threads: cli.runtime.threads,
        argv,
    })
}

pub fn run(cli: Cli) -> Result<Value> {
    let (device, _) = cli.runtime.setup_parallel()?;
    let resume = cli.run.resume.clone();
    let (cli, argv) =
        supervised::resolve_command(cli, resume.as_deref(), parse_saved, |c, dir| {
            c.run.resume = Some(dir)
        })?;
    let recipe = cli.distill.recipe()?;
    let reparse = |argv: &[String]| spec(&parse_saved(argv)?, argv.to_vec());
    let prepare = |setup: &Setup| prepare(&cli, recipe, setup).map(Some);
    let mut result = supervised::train_with(spec(&cli, argv)?, &device, reparse, prepare)?;
    result["command"] = Value::from("dist-distill");
    Ok(result)
}

/// The teacher (loaded, checked, evaluated, maybe cached) and the objective.
fn prepare(cli: &Cli, recipe: Recipe, setup: &Setup) -> Result<Method> {
    let args = &cli.distill;
    let mut report = recipe.describe();
    let cache = args.cache_teacher && recipe.term != Term::None;
    report["cache_teacher"] = json!(cache);
    let train = &setup.spec.args.train;
    if cache
        && (train.crop_padding != 0 || !train.no_flip || train.mixup > 0.0 || train.cutmix > 0.0)
    {
        return Err(EmberError::bad_input(
            "--cache-teacher needs the same inputs every epoch: add --crop-padding 0 --no-flip, without --mixup or --cutmix",
        ));
    }
    let teacher = match (&args.teacher, recipe.term) {
        (None, Term::None) => None,
        (None, _) => {
            return Err(EmberError::bad_input(format!(
                "--loss {} needs --teacher CKPT",
                args.loss
            )))
        }
        (Some(spec), _) => {
            let (teacher, eval) = Teacher::load_evaluated(spec, setup)?;
            report["teacher"] = json!(teacher.spec);
            report["teacher_arch"] = json!(teacher.arch());
            report["teacher_top1"] = json!(eval.top1);
            Some(teacher)
        }
    };
    let teacher = match teacher {
        Some(t) if recipe.term != Term::None => Some(TeacherLogits::new(t, cache, setup)?),
        _ => None,
    };
    Ok(Method {
        meta: vec![("distill".into(), report.to_string())],
        report,
        ..Method::with_objective(Box::new(Distillation {
            ce: CrossEntropy {
                smoothing: setup.settings.label_smoothing,
            },
            recipe,
            teacher,
        }))
    })
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        // Catches flags that clash with the flattened training flags (e.g. --gamma).
        super::Cli::command().debug_assert();
    }
}
