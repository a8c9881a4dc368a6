//! Supervised training of a registered model from the command line: what `ember train` and
//! the method tools that train a classifier (`lightvit-train`) share. The flags a run was
//! started with go to its `config.json` first, so `--resume DIR` rebuilds the same model,
//! data and settings: the tool re-parses the saved command line with its own parser.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use clap::Args;
use ember_core::hub::HubEnv;
use ember_core::{Checkpoint, CheckpointMeta, EmberError, Result, RunDir, SeededVarMap};
use ember_data::{Loader, LoaderConfig, OpenedData, Preprocess};
use ember_models::ModelConfig;
use ember_train::{Objective, StructureHook, TrainSettings, Trainer};
use serde_json::{json, Value};

use crate::{run_setup, DataArgs, TrainArgs};

/// The flags of a supervised run (the arch is each tool's own flag).
/// What the model predicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Task {
    /// A class per image.
    Classify,
    /// A class per pixel (semantic segmentation), e.g. on --data fashion-seg.
    Seg,
}

#[derive(Debug, Clone, Args)]
pub struct SupervisedArgs {
    /// classify or seg [default: seg for data with a label per pixel, else classify]. For
    /// seg, --arch is a seg_* arch or a ResNet, which becomes the backbone of the FPN
    /// decoder (default seg_resnet18); crops and flips are off (FashionSeg draws its own).
    #[arg(long, value_enum)]
    pub task: Option<Task>,
    /// JSON object (or a path to a JSON file) overriding fields of the arch's config, e.g.
    /// '{"stem_type": "small", "channels": [32, 64, 128, 256]}'. in_chans and num_classes follow the data.
    #[arg(long, value_name = "JSON|FILE", alias = "student-config")]
    pub model_config: Option<String>,
    /// Start from these weights (a checkpoint path or hf://owner/repo[@rev]/file.safetensors):
    /// its config is the model's, a new classifier is made when the class count differs, and
    /// RGB stem weights are summed for grey images.
    #[arg(long, value_name = "CKPT")]
    pub init: Option<String>,
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub train: TrainArgs,
    /// Run directory for config.json, metrics.jsonl, last/best.safetensors, curves.png, summary.json
    /// [default: runs/<arch>-<unix time>].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Continue the run in DIR from its last checkpoint, with the settings it was started with.
    #[arg(long, value_name = "DIR")]
    pub resume: Option<PathBuf>,
    /// No progress output on stderr.
    #[arg(long)]
    pub quiet: bool,
}

/// What a run is: the arch, its flags, the seed and the dtype, and the command line to
/// record for `--resume` (without the program name; with any preset written out, so that a
/// resumed run keeps its settings even if the preset changes).
#[derive(Debug, Clone)]
pub struct RunSpec {
    /// `None`: the `--init` checkpoint's arch, or ResNet without one.
    pub arch: Option<String>,
    pub args: SupervisedArgs,
    pub seed: u64,
    pub dtype: DType,
    /// `--threads`: a resumed run computes with the threads it was started with (the
    /// reduction order, hence the exact numbers, depends on them).
    pub threads: Option<usize>,
    pub argv: Vec<String>,
}

/// Rewrites a fresh run's model config (see [`Method::configure`]).
pub type Configure = Box<dyn FnOnce(&mut ModelConfig) -> Result<()>>;

/// What a method adds to supervised training (distillation: a teacher and its loss).
pub struct Method {
    /// What each step minimises instead of the plain cross-entropy.
    pub objective: Box<dyn Objective>,
    /// Recorded in every checkpoint's metadata, as `ember.<key>`.
    pub meta: Vec<(String, String)>,
    /// Written to config.json under `method` and merged into the result line.
    pub report: Value,
    /// Rewrites the model config of a fresh run before the model is built (a resumed run
    /// rebuilds what its checkpoint holds).
    pub configure: Option<Configure>,
    /// Changes the model's structure as it trains.
    pub structure: Option<Box<dyn StructureHook>>,
}

impl Method {
    /// A method that only brings its objective.
    pub fn with_objective(objective: Box<dyn Objective>) -> Self {
        Self {
            objective,
            meta: Vec::new(),
            report: Value::Null,
            configure: None,
            structure: None,
        }
    }
}

/// The resolved run a method prepares for: its spec (the saved one when resuming, so a
/// method can read its own flags back from `spec.argv`), data, preprocessing and loaders.
pub struct Setup<'a> {
    pub spec: &'a RunSpec,
    pub data: &'a OpenedData,
    pub prep: &'a Preprocess,
    pub settings: &'a TrainSettings,
    pub train: &'a Loader,
    pub eval: &'a Loader,
    pub device: &'a Device,
    pub dtype: DType,
    pub quiet: bool,
}

/// The command line a run was started with (without the program name), from its
/// config.json.
pub fn saved_argv(run: &RunDir) -> Result<Vec<String>> {
    let config = run.read_json("config.json")?;
    serde_json::from_value(config["argv"].clone()).map_err(|_| {
        EmberError::bad_input(format!("{}: config.json has no argv", run.root().display()))
    })
}

/// The command line a tool runs and its arguments (without the program name): its own, or
/// with `--resume DIR` (`resume`) the one the run was started with, re-parsed by `parse`
/// and pointed back at DIR by `resuming`: a resumed run is the run it was started as.
pub fn resolve_command<C>(
    cli: C,
    resume: Option<&Path>,
    parse: impl Fn(&[String]) -> Result<C>,
    resuming: impl FnOnce(&mut C, PathBuf),
) -> Result<(C, Vec<String>)> {
    match resume {
        Some(dir) => {
            let argv = saved_argv(&RunDir::open(dir)?)?;
            let mut saved = parse(&argv)?;
            resuming(&mut saved, dir.to_path_buf());
            Ok((saved, argv))
        }
        None => Ok((cli, std::env::args().skip(1).collect())),
    }
}

/// `--model-config`: inline JSON or a file holding it.
pub fn model_overrides(arg: &Option<String>) -> Result<Value> {
    let Some(text) = arg else {
        return Ok(Value::Null);
    };
    let trimmed = text.trim_start();
    let json_text = if trimmed.starts_with('{') {
        text.clone()
    } else {
        std::fs::read_to_string(text).map_err(|e| EmberError::io(text, e))?
    };
    serde_json::from_str(&json_text)
        .map_err(|e| EmberError::bad_input(format!("--model-config is not valid JSON ({e})")))
}

/// Trains `spec`, or with `spec.args.resume` set continues that run: `reparse` turns the
/// run's saved command line back into its spec, with the tool's own parser.
pub fn train(
    spec: RunSpec,
    device: &Device,
    reparse: impl Fn(&[String]) -> Result<RunSpec>,
) -> Result<Value> {
    train_with(spec, device, reparse, |_| Ok(None))
}

/// [`train`] with a method's objective: `prepare` runs once the data and loaders exist and
/// before the run directory is touched, so a method's bad input (a teacher for other
/// labels) leaves nothing behind.
pub fn train_with(
    spec: RunSpec,
    device: &Device,
    reparse: impl Fn(&[String]) -> Result<RunSpec>,
    prepare: impl FnOnce(&Setup) -> Result<Option<Method>>,
) -> Result<Value> {
    let resume = spec.args.resume.clone();
    let (spec, resumed) = run_setup::continue_run(spec, resume.as_deref(), reparse, |s| s.threads)?;
    let RunSpec {
        arch,
        args: cmd,
        seed,
        dtype,
        argv,
        ..
    } = &spec;
    let (seed, dtype) = (*seed, *dtype);
    // Everything the flags decide is checked before the run directory is touched.
    let settings = cmd.train.settings(seed)?;
    let overrides = model_overrides(&cmd.model_config)?;
    let (data, prep) = run_setup::open_data(&cmd.data)?;
    let (c, h, w) = (prep.channels, prep.height, prep.width);
    let task = task_of(cmd.task, &data)?;
    if task == Task::Seg && (settings.mixup > 0.0 || settings.cutmix > 0.0) {
        return Err(EmberError::bad_input(ember_train::mix::NOT_ON_DENSE));
    }
    let default_arch = match task {
        Task::Classify => "resnet",
        Task::Seg => "seg_resnet18",
    };
    let (model_cfg, init) = match &cmd.init {
        Some(spec) => {
            let (cfg, init) = pretrained(spec, arch.as_deref(), &overrides, device)?;
            (cfg, Some(init))
        }
        None => (
            ember_models::resolve(arch.as_deref().unwrap_or(default_arch), &overrides)?,
            None,
        ),
    };
    let model_cfg = fit_to_task(model_cfg, task)?;

    ember_models::registry::check_input(&model_cfg.family, &model_cfg.config, h, w)?;
    let loader = |ds, pipeline, shuffle| {
        let cfg = LoaderConfig {
            batch_size: cmd.data.batch_size,
            shuffle,
            drop_last: shuffle,
            workers: cmd.data.workers,
            seed,
            shard: if shuffle {
                ember_data::Shard::of_this_process()
            } else {
                ember_data::Shard::WHOLE
            },
        };
        Loader::new(ds, pipeline, cfg)
    };
    let train_pipeline = match task {
        Task::Classify => prep.train_pipeline(cmd.train.crop_padding, !cmd.train.no_flip),
        Task::Seg => prep.eval_pipeline(),
    };
    let train_loader = loader(data.train.clone(), train_pipeline, true)?;
    let eval_loader = loader(data.test.clone(), prep.eval_pipeline(), false)?;
    let method = prepare(&Setup {
        spec: &spec,
        data: &data,
        prep: &prep,
        settings: &settings,
        train: &train_loader,
        eval: &eval_loader,
        device,
        dtype,
        quiet: cmd.quiet,
    })?;

    let (run, resume) = run_setup::open_run(
        resumed,
        cmd.out.clone(),
        arch.as_deref().unwrap_or(&model_cfg.family),
        argv,
        device,
    )?;
    let mut model_cfg = model_cfg;
    model_cfg.fit("in_chans", c, &overrides)?;
    model_cfg.fit("num_classes", data.classes.len(), &overrides)?;
    let mut method = method;
    match &resume {
        // The checkpoint is the truth about its own weights (a method may have changed the
        // structure since the run started).
        Some(ckpt) => model_cfg.config = ckpt.meta.config.clone(),
        None => {
            if let Some(configure) = method.as_mut().and_then(|m| m.configure.take()) {
                configure(&mut model_cfg)?;
            }
        }
    }
    let vars = SeededVarMap::new(seed);
    let model = ember_models::build(
        &model_cfg.family,
        &model_cfg.config,
        vars.var_builder(dtype, device),
    )?;
    if let (Some((what, tensors)), None) = (&init, &resume) {
        for note in ember_models::load_pretrained(vars.vars(), tensors, model.head_prefix(), what)?
        {
            crate::note!("init: {note}");
        }
        crate::note!("init: weights from {what}");
    }
    crate::note!(
        "data: {}; test: {}",
        data.train.source(),
        data.test.source()
    );

    let task_name = match task {
        Task::Classify => "classification",
        Task::Seg => "segmentation",
    };
    let mut meta = CheckpointMeta::new(
        &model_cfg.family,
        model_cfg.config.clone(),
        task_name,
        data.classes.clone(),
    );
    meta.extra.insert(
        "preprocess".into(),
        serde_json::to_string(&prep).expect("preprocess serialises"),
    );
    if let Some(m) = &method {
        meta.extra.extend(m.meta.iter().cloned());
    }
    if resume.is_none() {
        let mut config = run.read_json("config.json").unwrap_or(json!({}));
        config["model"] = json!({ "family": model_cfg.family, "config": model_cfg.config });
        config["settings"] = serde_json::to_value(&settings).expect("settings serialise");
        config["preprocess"] = serde_json::to_value(&prep).expect("preprocess serialises");
        config["data"] = json!({ "train": data.train.source(), "test": data.test.source() });
        if let Some(m) = &method {
            config["method"] = m.report.clone();
        }
        run.write_json("config.json", &config)?;
    }

    let trainer = Trainer {
        model: model.as_ref(),
        vars: &vars,
        train: train_loader,
        eval: eval_loader,
        settings,
        objective: method.as_ref().map(|m| m.objective.as_ref()),
        structure: method.as_ref().and_then(|m| m.structure.as_deref()),
        run: run.clone(),
        meta,
        device: device.clone(),
        dtype,
        quiet: cmd.quiet,
    };
    let summary = trainer.fit(resume.as_ref())?;
    let mut result = json!({
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
    });
    if let Some(seg) = &summary.final_eval.segmentation {
        result["task"] = json!(task_name);
        result["test_miou"] = json!(seg.miou);
        result["test_pixel_accuracy"] = json!(seg.pixel_accuracy);
        result["test_class_iou"] = json!(seg.class_iou);
        result["best_miou"] = json!(summary.best_top1);
        result
            .as_object_mut()
            .expect("an object")
            .remove("best_top1");
    }
    if let Some(fields) = method.as_ref().and_then(|m| m.report.as_object()) {
        for (k, v) in fields {
            result[k] = v.clone();
        }
    }
    Ok(result)
}

/// The task `--task` names, or the data's: segmentation for a label per pixel.
fn task_of(chosen: Option<Task>, data: &OpenedData) -> Result<Task> {
    let dense = data.train.dense();
    match chosen {
        Some(Task::Seg) if !dense => Err(EmberError::bad_input(format!(
            "--task seg needs a label per pixel, and {} has one per image (try --data fashion-seg)",
            data.train.source()
        ))),
        Some(task) => Ok(task),
        None if dense => Ok(Task::Seg),
        None => Ok(Task::Classify),
    }
}

/// The model for `task`: a segmentation task takes a `seg` model, or a ResNet as the
/// backbone of the seg preset's decoder; classification refuses a `seg` model.
fn fit_to_task(cfg: ModelConfig, task: Task) -> Result<ModelConfig> {
    match (task, cfg.family.as_str()) {
        (Task::Seg, "seg") => Ok(cfg),
        (Task::Seg, "resnet") => {
            let mut seg = ember_models::resolve("seg_resnet18", &Value::Null)?;
            seg.config["backbone"] = cfg.config;
            Ok(seg)
        }
        (Task::Seg, other) => Err(EmberError::bad_input(format!(
            "--task seg needs a seg_* arch or a ResNet backbone, not a {other}"
        ))),
        (Task::Classify, "seg") => Err(EmberError::bad_input(
            "a seg model predicts per pixel: use --task seg with data labelled per pixel",
        )),
        (Task::Classify, _) => Ok(cfg),
    }
}

/// Weights to start from: where they came from, and the tensors by name.
type Init = (String, HashMap<String, Tensor>);

/// The model config of the weights of `spec` (a path or `hf://` file), from its metadata
/// with the user's overrides on top, and the weights. `arch`, if given, must name the
/// checkpoint's family.
fn pretrained(
    spec: &str,
    arch: Option<&str>,
    overrides: &Value,
    device: &Device,
) -> Result<(ember_models::ModelConfig, Init)> {
    let path = HubEnv::from_env().resolve(spec)?;
    let ckpt = Checkpoint::load(&path, device)?;
    if let Some(arch) = arch {
        let family = ember_models::resolve(arch, &Value::Null)?.family;
        if ckpt.meta.arch != family {
            return Err(EmberError::bad_input(format!(
                "--init {spec} holds a {}, not a {family}",
                ckpt.meta.arch
            )));
        }
    }
    let mut cfg = ember_models::ModelConfig {
        family: ckpt.meta.arch.clone(),
        config: ckpt.meta.config.clone(),
    };
    cfg.apply(overrides)?;
    let tensors = ckpt
        .model_tensors()
        .map(|(k, t)| (k.clone(), t.clone()))
        .collect();
    Ok((cfg, (spec.to_string(), tensors)))
}
