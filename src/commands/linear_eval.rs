//! `ember linear-eval`: the standard measure of a self-supervised backbone. The backbone is
//! frozen (evaluation mode, as the official probes keep it), its pooled features are
//! extracted once for the train and test splits, and a linear layer is trained on them
//! (`ember_train::probe`); with `--out` the layer becomes the checkpoint's classifier.

use std::str::FromStr;
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use ember_cli::run_setup::open_data;
use ember_cli::supervised::model_overrides;
use ember_cli::DataArgs;
use ember_core::{Checkpoint, CheckpointMeta, EmberError, Result, SeededVarMap};
use ember_data::{DataSource, Loader, LoaderConfig, OpenedData, Preprocess};
use ember_models::LoadedModel;
use ember_train::probe::select;
use ember_train::{class_fraction, extract, linear_probe, ProbeSettings};
use serde_json::{json, Value};

use crate::cli::LinearEvalCommand;

pub fn run(cmd: &LinearEvalCommand, device: &Device, dtype: DType, seed: u64) -> Result<Value> {
    if !(cmd.fraction > 0.0 && cmd.fraction <= 1.0) {
        return Err(EmberError::bad_input("--fraction must be in (0, 1]"));
    }
    if cmd.epochs == 0 || cmd.batch_size == 0 || cmd.lr.is_nan() || cmd.lr <= 0.0 {
        return Err(EmberError::bad_input(
            "--epochs, --batch-size and --lr must be positive",
        ));
    }
    // The data is opened once: a checkpoint's preprocessing decides how, a random network
    // is sized for the data.
    let (loaded, prep, data, name) = match (&cmd.backbone, &cmd.random_arch) {
        (Some(spec), _) => {
            let (loaded, prep) = super::open_checkpoint(spec, device, dtype)?;
            let source = DataSource::from_str(&cmd.data)?;
            let data = ember_data::open(&source, prep.channels, prep.height)?;
            (loaded, prep, data, spec.clone())
        }
        (None, Some(arch)) => {
            // A folder is decoded as DataArgs' default (RGB at 32 px); images are resized to
            // the arch's own input size when it takes no other (LightViT's and Swin's
            // windows).
            let open = |image_size| {
                open_data(&DataArgs {
                    data: cmd.data.clone(),
                    batch_size: 1,
                    workers: 0,
                    image_size,
                    channels: 3,
                    label_fraction: None,
                    label_seed: 0,
                })
            };
            let (mut data, mut prep) = open(None)?;
            let cfg = ember_models::resolve(arch, &model_overrides(&cmd.model_config)?)?;
            let fits = ember_models::registry::check_input;
            if fits(&cfg.family, &cfg.config, prep.height, prep.width).is_err() {
                let side = ember_models::registry::default_input_size(&cfg.family, &cfg.config);
                (data, prep) = open(Some(side))?;
            }
            let loaded =
                random_backbone(arch, &cmd.model_config, &data, &prep, device, dtype, seed)?;
            (loaded, prep, data, format!("random {arch} (seed {seed})"))
        }
        (None, None) => return Err(EmberError::bad_input("give --backbone or --random-arch")),
    };
    let channels = data.train.image_dims()[0];
    if channels != prep.channels {
        return Err(EmberError::bad_input(format!(
            "the backbone expects {}-channel images, {} has {channels}",
            prep.channels, cmd.data
        )));
    }
    eprintln!(
        "data: {}; test: {}",
        data.train.source(),
        data.test.source()
    );
    let started = Instant::now();
    let loader = |ds| {
        let cfg = LoaderConfig {
            batch_size: 256,
            shuffle: false,
            drop_last: false,
            workers: cmd.workers,
            seed: 0,
            shard: ember_data::Shard::WHOLE,
        };
        Loader::new(ds, prep.eval_pipeline(), cfg)
    };
    let model = loaded.model.as_ref();
    let (train_x, train_y) = extract(model, &loader(data.train.clone())?, device, dtype)?;
    let (test_x, test_y) = extract(model, &loader(data.test.clone())?, device, dtype)?;
    let extract_seconds = started.elapsed().as_secs_f64();
    let (train_x, train_y) = if cmd.fraction < 1.0 {
        select(
            &train_x,
            &train_y,
            &class_fraction(&train_y, cmd.fraction, seed),
            device,
        )?
    } else {
        (train_x, train_y)
    };
    let classes = data.classes.len();
    let settings = ProbeSettings {
        epochs: cmd.epochs,
        lr: cmd.lr,
        batch_size: cmd.batch_size,
        seed,
    };
    let r = linear_probe((&train_x, &train_y), (&test_x, &test_y), classes, &settings)?;
    let mut result = json!({
        "command": "linear-eval",
        "backbone": name,
        "arch": loaded.checkpoint.meta.arch,
        "data": data.test.source(),
        "feature_dim": train_x.dim(1)?,
        "train_images": train_y.len(),
        "fraction": cmd.fraction,
        "epochs": cmd.epochs,
        "top1": r.top1,
        "best_top1": r.best_top1,
        "best_epoch": r.best_epoch,
        "extract_seconds": extract_seconds,
        "seconds": started.elapsed().as_secs_f64(),
    });
    if let Some(out) = &cmd.out {
        let mut meta = loaded.checkpoint.meta.clone();
        meta.labels = data.classes.clone();
        meta.config["num_classes"] = json!(classes);
        meta.metrics = json!({ "test_top1": r.top1, "linear_eval": true });
        let head = model.head_prefix();
        let mut tensors: Vec<(String, Tensor)> = loaded
            .checkpoint
            .model_tensors()
            .filter(|(k, _)| !k.starts_with(head))
            .map(|(k, t)| (k.clone(), t.clone()))
            .collect();
        tensors.push((format!("{head}weight"), r.weight.clone()));
        tensors.push((format!("{head}bias"), r.bias.clone()));
        Checkpoint::save(out, &meta, tensors.iter().map(|(k, t)| (k.as_str(), t)))?;
        result["checkpoint"] = json!(out.display().to_string());
    }
    Ok(result)
}

/// A freshly initialised `arch` (with `overrides`) sized for `data`, as a loaded model.
fn random_backbone(
    arch: &str,
    overrides: &Option<String>,
    data: &OpenedData,
    prep: &Preprocess,
    device: &Device,
    dtype: DType,
    seed: u64,
) -> Result<LoadedModel> {
    let overrides = model_overrides(overrides)?;
    let mut cfg = ember_models::resolve(arch, &overrides)?;
    ember_models::registry::check_input(&cfg.family, &cfg.config, prep.height, prep.width)?;
    cfg.fit("in_chans", prep.channels, &overrides)?;
    cfg.fit("num_classes", data.classes.len(), &overrides)?;
    let vars = SeededVarMap::new(seed);
    let model = ember_models::build(&cfg.family, &cfg.config, vars.var_builder(dtype, device))?;
    let meta = CheckpointMeta::new(
        &cfg.family,
        cfg.config.clone(),
        "classification",
        data.classes.clone(),
    );
    let tensors = vars.tensors().into_iter().collect();
    let checkpoint = Checkpoint { meta, tensors };
    Ok(LoadedModel {
        model,
        vars,
        checkpoint,
    })
}
