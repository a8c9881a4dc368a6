//! `ember train`: any registered model on any dataset, in a run directory that `--resume`
//! continues. The run's `config.json` keeps the exact command line it was started with, so
//! a resumed run rebuilds the same model, data and settings.

use std::path::PathBuf;
use std::str::FromStr;

use candle_core::{DType, Device};
use clap::Parser;
use ember_core::{Checkpoint, CheckpointMeta, EmberError, Result, RunDir, SeededVarMap};
use ember_data::{DataSource, Loader, LoaderConfig, Preprocess};
use ember_train::Trainer;
use serde_json::{json, Value};

use crate::cli::{Cli, Command, TrainCommand};

/// The command line of the run being resumed, from its config.json.
fn saved_command(run: &RunDir) -> Result<(TrainCommand, u64, DType)> {
    let config = run.read_json("config.json")?;
    let argv: Vec<String> = serde_json::from_value(config["argv"].clone()).map_err(|_| {
        EmberError::bad_input(format!("{}: config.json has no argv", run.root().display()))
    })?;
    let cli =
        Cli::try_parse_from(std::iter::once("ember".to_string()).chain(argv)).map_err(|e| {
            EmberError::bad_input(format!(
                "{}: saved command no longer parses ({})",
                run.root().display(),
                e.kind()
            ))
        })?;
    let (seed, dtype) = (cli.runtime.seed, cli.runtime.dtype());
    match cli.command {
        Command::Train(cmd) => Ok((*cmd, seed, dtype)),
        _ => Err(EmberError::bad_input(format!(
            "{}: not a training run",
            run.root().display()
        ))),
    }
}

pub fn run(cmd: &TrainCommand, device: &Device, dtype: DType, seed: u64) -> Result<Value> {
    let resumed = match &cmd.resume {
        Some(dir) => {
            let run = RunDir::open(dir)?;
            let (saved, seed, dtype) = saved_command(&run)?;
            Some((saved, seed, dtype, run))
        }
        None => None,
    };
    let (cmd, seed, dtype) = match &resumed {
        Some((saved, seed, dtype, _)) => (saved.clone(), *seed, *dtype),
        None => (cmd.clone(), seed, dtype),
    };
    // Everything the flags decide is checked before the run directory is touched.
    let settings = cmd.train.settings(seed)?;
    let source = DataSource::from_str(&cmd.data.data)?;
    let overrides = super::model_overrides(&cmd.model_config)?;
    let mut model_cfg = ember_models::resolve(&cmd.arch, &overrides)?;

    let (run, resume) = match resumed {
        Some((_, _, _, run)) => {
            let last = run.file("last.safetensors");
            // A run killed before its first checkpoint starts over in the same folder.
            let resume = if last.exists() {
                Some(Checkpoint::load(&last, device)?)
            } else {
                None
            };
            eprintln!(
                "resuming {} from {}",
                run.root().display(),
                if resume.is_some() {
                    "its last checkpoint"
                } else {
                    "the start"
                }
            );
            (run, resume)
        }
        None => {
            let out = cmd.out.clone().unwrap_or_else(|| {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                PathBuf::from(format!("runs/{}-{now}", cmd.arch))
            });
            let run = RunDir::create(&out)?;
            // The command line goes to config.json before anything else, so even a run
            // killed in its first epoch can be resumed.
            let argv: Vec<String> = std::env::args().skip(1).collect();
            run.write_json("config.json", &json!({ "argv": argv }))?;
            (run, None)
        }
    };
    let data = ember_data::open(&source, cmd.data.channels as usize, cmd.data.folder_size())?;
    let [c, h, w] = data.train.image_dims();
    let (h, w) = cmd.data.image_size.map_or((h, w), |s| (s, s));
    let prep = Preprocess {
        channels: c,
        height: h,
        width: w,
        mean: data.mean.clone(),
        std: data.std.clone(),
    };

    model_cfg.fit("in_chans", c, &overrides)?;
    model_cfg.fit("num_classes", data.classes.len(), &overrides)?;
    let vars = SeededVarMap::new(seed);
    let model = ember_models::build(
        &model_cfg.family,
        &model_cfg.config,
        vars.var_builder(dtype, device),
    )?;
    eprintln!(
        "data: {}; test: {}",
        data.train.source(),
        data.test.source()
    );

    let mut meta = CheckpointMeta::new(
        &model_cfg.family,
        model_cfg.config.clone(),
        "classification",
        data.classes.clone(),
    );
    meta.extra.insert(
        "preprocess".into(),
        serde_json::to_string(&prep).expect("preprocess serialises"),
    );
    if resume.is_none() {
        let mut config = run.read_json("config.json").unwrap_or(json!({}));
        config["model"] = json!({ "family": model_cfg.family, "config": model_cfg.config });
        config["settings"] = serde_json::to_value(&settings).expect("settings serialise");
        config["preprocess"] = serde_json::to_value(&prep).expect("preprocess serialises");
        config["data"] = json!({ "train": data.train.source(), "test": data.test.source() });
        run.write_json("config.json", &config)?;
    }

    let loader = |ds, pipeline, shuffle| {
        let cfg = LoaderConfig {
            batch_size: cmd.data.batch_size,
            shuffle,
            drop_last: shuffle,
            workers: cmd.data.workers,
            seed,
        };
        Loader::new(ds, pipeline, cfg)
    };
    let trainer = Trainer {
        model: model.as_ref(),
        vars: &vars,
        train: loader(
            data.train.clone(),
            prep.train_pipeline(cmd.train.crop_padding, !cmd.train.no_flip),
            true,
        )?,
        eval: loader(data.test.clone(), prep.eval_pipeline(), false)?,
        settings,
        run: run.clone(),
        meta,
        device: device.clone(),
        dtype,
        quiet: cmd.quiet,
    };
    let summary = trainer.fit(resume.as_ref())?;
    Ok(json!({
        "command": "train",
        "arch": model_cfg.family,
        "data": data.test.source(),
        "epochs": summary.epochs,
        "test_top1": summary.final_eval.top1,
        "test_top5": summary.final_eval.top5,
        "test_loss": summary.final_eval.loss,
        "best_top1": summary.best_top1,
        "best_epoch": summary.best_epoch,
        "train_seconds": summary.train_seconds,
        "run_dir": summary.run_dir,
        "checkpoint": summary.best_checkpoint,
    }))
}
