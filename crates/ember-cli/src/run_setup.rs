//! The steps every training tool takes before its loop: the run a `--resume DIR` names
//! (its saved command line re-parsed), the data and its preprocessing, and the run folder
//! with the checkpoint to continue from.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use candle_core::Device;
use ember_core::{Checkpoint, EmberError, Result, RunDir};
use ember_data::source::Subset;
use ember_data::{DataSource, Dataset, OpenedData, Preprocess};
use serde_json::json;

use crate::supervised::saved_argv;
use crate::DataArgs;

/// The spec a training run goes on with and, with `resume` set, its run folder: a resumed run
/// is the run it was started as (`reparse` turns its saved command line back into its spec).
/// Then builds the thread pool with that spec's `threads`: a resumed run computes with the
/// count it was started with (the reduction order, hence the exact numbers, depends on it),
/// unless the resuming command's `--threads` built the pool already.
pub fn continue_run<S>(
    spec: S,
    resume: Option<&Path>,
    reparse: impl Fn(&[String]) -> Result<S>,
    threads: impl Fn(&S) -> Option<usize>,
) -> Result<(S, Option<RunDir>)> {
    let (spec, run) = match resume {
        Some(dir) => {
            let run = RunDir::open(dir)?;
            let saved = reparse(&saved_argv(&run)?).map_err(|e| {
                EmberError::bad_input(format!(
                    "{}: saved command no longer parses ({e})",
                    run.root().display()
                ))
            })?;
            (saved, Some(run))
        }
        None => (spec, None),
    };
    crate::startup::compute_pool(threads(&spec));
    Ok((spec, run))
}

/// `fraction` of each class of `train`, drawn with `seed`.
fn labelled_fraction(
    train: Arc<dyn Dataset>,
    fraction: f64,
    seed: u64,
) -> Result<Arc<dyn Dataset>> {
    if !(fraction > 0.0 && fraction <= 1.0) {
        return Err(EmberError::bad_input(format!(
            "--label-fraction must be in (0, 1], got {fraction}"
        )));
    }
    let labels = (0..train.len())
        .map(|i| train.label(i))
        .collect::<Result<Vec<u32>>>()?;
    let kept = ember_train::probe::class_fraction(&labels, fraction, seed);
    Ok(Arc::new(Subset::new(train, kept, "labelled fraction")))
}

/// The data `--data` names and the preprocessing the model will see (`--image-size`).
pub fn open_data(args: &DataArgs) -> Result<(OpenedData, Preprocess)> {
    let source = DataSource::from_str(&args.data)?;
    let mut data = ember_data::open(&source, args.channels as usize, args.folder_size())?;
    if let Some(fraction) = args.label_fraction {
        data.train = labelled_fraction(data.train, fraction, args.label_seed)?;
    }
    let [c, h, w] = data.train.image_dims();
    let (h, w) = args.image_size.map_or((h, w), |s| (s, s));
    let prep = Preprocess {
        channels: c,
        height: h,
        width: w,
        mean: data.mean.clone(),
        std: data.std.clone(),
    };
    Ok((data, prep))
}

/// The run folder and, when resuming, the checkpoint to continue from (none if the run was
/// killed before its first one: it starts over in the same folder). A fresh run's folder is
/// `out` or `runs/<name>-<unix time>`, with the command line in config.json first, so even
/// a run killed in its first epoch can be resumed.
pub fn open_run(
    resumed: Option<RunDir>,
    out: Option<PathBuf>,
    name: &str,
    argv: &[String],
    device: &Device,
) -> Result<(RunDir, Option<Checkpoint>)> {
    match resumed {
        Some(run) => {
            let last = run.file("last.safetensors");
            let resume = if last.exists() {
                Some(Checkpoint::load(&last, device)?)
            } else {
                None
            };
            crate::note!(
                "resuming {} from {}",
                run.root().display(),
                if resume.is_some() {
                    "its last checkpoint"
                } else {
                    "the start"
                }
            );
            Ok((run, resume))
        }
        None => {
            let out = out.unwrap_or_else(|| {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                PathBuf::from(format!("runs/{name}-{now}"))
            });
            let run = RunDir::create(&out)?;
            run.write_json("config.json", &json!({ "argv": argv }))?;
            Ok((run, None))
        }
    }
}
