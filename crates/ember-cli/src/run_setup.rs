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

/// With `resume` set, the spec its run was started with (`reparse` turns the saved command
/// line back into one) and the run folder.
pub fn resumed<S>(
    resume: Option<&Path>,
    reparse: impl Fn(&[String]) -> Result<S>,
) -> Result<Option<(S, RunDir)>> {
    let Some(dir) = resume else {
        return Ok(None);
    };
    let run = RunDir::open(dir)?;
    let saved = reparse(&saved_argv(&run)?).map_err(|e| {
        EmberError::bad_input(format!(
            "{}: saved command no longer parses ({e})",
            run.root().display()
        ))
    })?;
    Ok(Some((saved, run)))
}

/// Builds the thread pool of a training run with its own thread count (`--threads`, or
/// one per core): for a resumed run, the count it was started with (the reduction order,
/// hence the exact numbers, depends on it), whatever the resuming command says. A pool
/// that already exists (`--threads` given again) stays as it is.
pub fn use_threads(threads: Option<usize>) {
    crate::startup::compute_pool(threads);
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
