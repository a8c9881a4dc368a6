//! Self-supervised pre-training from the command line: what `ressl-pretrain` and
//! `lewel-pretrain` share. The tool parses its method's flags and builds the method's
//! pretext on the backbone this module builds; data, views, the kNN monitor, the run folder,
//! checkpoints and resume are here. As with supervised runs, the command line goes to
//! `config.json` first and `--resume DIR` re-parses it, so a resumed run is the run it was.

use std::path::PathBuf;
use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use clap::Args;
use ember_core::{CheckpointMeta, EmberError, Result, SeededVarMap};
use ember_data::source::Subset;
use ember_data::{Dataset, Loader, LoaderConfig, Preprocess, ViewRecipe};
use ember_models::{Classifier, ModelConfig};
use ember_train::{Knn, Monitor, Pretext, Pretrainer};
use serde_json::{json, Value};

use crate::preset::{self, Invocation, Presets};
use crate::supervised::model_overrides;
use crate::{run_setup, DataArgs, RuntimeArgs, TrainArgs};

/// The flags of a pre-training run (each tool adds its method's own).
#[derive(Debug, Clone, Args)]
pub struct PretrainArgs {
    /// Backbone to pre-train: any registered arch (resnet, resnet18, lightvit_nano_32, ...).
    #[arg(long, default_value = "resnet")]
    pub arch: String,
    /// JSON object (or a path to a JSON file) overriding fields of the arch's config, e.g.
    /// '{"stem_type": "small", "layers": [1, 1, 1], "channels": [8, 16, 32]}'.
    #[arg(long, value_name = "JSON|FILE")]
    pub model_config: Option<String>,
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub train: TrainArgs,
    /// kNN monitor: training images in the feature bank, evenly spaced (0: all).
    #[arg(long, default_value_t = 10000)]
    pub knn_bank: usize,
    /// kNN monitor: neighbours that vote.
    #[arg(long, default_value_t = 200)]
    pub knn_k: usize,
    /// kNN monitor: temperature of the votes' weights exp(similarity / T).
    #[arg(long, default_value_t = 0.1)]
    pub knn_temperature: f64,
    /// Run directory for config.json, metrics.jsonl, last/best/backbone.safetensors,
    /// curves.png, summary.json [default: runs/<tool>-<unix time>].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Continue the run in DIR from its last checkpoint, with the settings it was started with.
    #[arg(long, value_name = "DIR")]
    pub resume: Option<PathBuf>,
    /// No progress output on stderr.
    #[arg(long)]
    pub quiet: bool,
}

impl PretrainArgs {
    /// Supervised-only flags are refused rather than ignored.
    fn check(&self) -> Result<()> {
        let t = &self.train;
        let unused = [
            ("--mixup", t.mixup != 0.0),
            ("--cutmix", t.cutmix != 0.0),
            ("--label-smoothing", t.label_smoothing != 0.0),
            ("--ema-decay", t.ema_decay.is_some()),
            ("--clip-grad", t.clip_grad.is_some()),
            ("--label-fraction", self.data.label_fraction.is_some()),
        ];
        match unused.iter().find(|(_, set)| *set) {
            Some((flag, _)) => Err(EmberError::bad_input(format!(
                "{flag} is a supervised-training flag; pre-training uses no labels"
            ))),
            None => Ok(()),
        }
    }
}

/// A pre-training run: the tool, the shared flags, the method's own (`M`), and the command
/// line to record for `--resume` (without the program name, any preset written out).
#[derive(Debug, Clone)]
pub struct PretrainSpec<M> {
    pub tool: &'static str,
    pub args: PretrainArgs,
    pub method: M,
    pub seed: u64,
    pub dtype: DType,
    pub threads: Option<usize>,
    pub argv: Vec<String>,
}

impl<M> PretrainSpec<M> {
    /// The spec of a parsed command line; `expanded` is the command line with any preset
    /// written out, program name first.
    pub fn new(
        tool: &'static str,
        runtime: &RuntimeArgs,
        args: &PretrainArgs,
        method: M,
        expanded: &[String],
    ) -> Self {
        Self {
            tool,
            args: args.clone(),
            method,
            seed: runtime.seed,
            dtype: runtime.dtype(),
            threads: runtime.threads,
            argv: expanded.iter().skip(1).cloned().collect(),
        }
    }
}

/// What a method builds its pretext from.
pub struct Build<'a> {
    pub vars: &'a SeededVarMap,
    /// The backbone's config (input channels and classes fitted to the data).
    pub model: &'a ModelConfig,
    pub prep: &'a Preprocess,
    pub batch_size: usize,
    pub steps_per_epoch: usize,
    /// Optimizer steps in the whole run (momentum schedules end there).
    pub total_steps: usize,
    pub device: &'a Device,
    pub dtype: DType,
    pub seed: u64,
}

impl Build<'_> {
    /// The backbone, its variables under `prefix` (`encoder_q.net`, `online_net.backbone`).
    pub fn backbone(&self, prefix: &str) -> Result<Box<dyn Classifier>> {
        let vb = self.vars.var_builder(self.dtype, self.device).pp(prefix);
        ember_models::build(&self.model.family, &self.model.config, vb)
    }

    /// (pooled feature width, channels of the last feature map) of a backbone, probed with
    /// one blank image in eval mode.
    pub fn widths(&self, model: &dyn Classifier) -> Result<(usize, usize)> {
        let p = self.prep;
        let x = Tensor::zeros((1, p.channels, p.height, p.width), self.dtype, self.device)?;
        Ok((
            model.features(&x, false)?.dim(1)?,
            model.feature_map(&x, false)?.dim(1)?,
        ))
    }
}

/// A method ready to train.
pub struct Built {
    pub pretext: Box<dyn Pretext>,
    /// The views each image is augmented into.
    pub views: ViewRecipe,
    /// The method's name and settings: in config.json, the checkpoints and the result.
    pub report: Value,
}

/// What the shared front end of a pre-training tool reads from its parsed command line.
pub trait PretrainCli: clap::Parser {
    /// The method's own flags.
    type Method: Clone;
    fn runtime(&self) -> &RuntimeArgs;
    /// `--show-preset NAME`.
    fn show_preset(&self) -> Option<&str>;
    fn run_args(&self) -> &PretrainArgs;
    fn method(&self) -> Self::Method;
}

/// What every pre-training tool's `lib.rs` declares: `TOOL` (its presets), `Invocation`,
/// `parse(argv)` (one-line errors, exit code 2) and [`PretrainCli`] for its `Cli`, whose
/// fields are `runtime`, `show_preset`, `run` and the method's flags `$field`.
///
/// `pretrain_tool!(Cli, ResslArgs, ressl, "ressl-pretrain", PRESETS, "fashion-mnist");`
#[macro_export]
macro_rules! pretrain_tool {
    ($cli:ty, $method:ty, $field:ident, $tool:literal, $presets:expr, $default:literal) => {
        const TOOL: $crate::preset::Presets = $crate::preset::Presets {
            tool: $tool,
            list: $presets,
            default: $default,
        };

        pub type Invocation = $crate::preset::Invocation<$cli>;

        /// Parses `argv` (the program name first) with its preset expanded; errors are one
        /// line and exit code 2.
        pub fn parse(argv: &[String]) -> std::result::Result<Invocation, std::process::ExitCode> {
            TOOL.parse(argv)
        }

        impl $crate::pretrain::PretrainCli for $cli {
            type Method = $method;

            fn runtime(&self) -> &$crate::RuntimeArgs {
                &self.runtime
            }

            fn show_preset(&self) -> Option<&str> {
                self.show_preset.as_deref()
            }

            fn run_args(&self) -> &$crate::pretrain::PretrainArgs {
                &self.run
            }

            fn method(&self) -> $method {
                self.$field.clone()
            }
        }
    };
}

/// A saved command line (without the program name) of a tool whose subcommand runs the
/// pre-training loop, back into its spec for `--resume`: `spec_of` picks that subcommand out
/// of the parsed `C`, or says `None` when the run folder holds another command's run.
pub fn reparse_subcommand<C: clap::Parser, A>(
    tool: &str,
    saved: &[String],
    spec_of: impl FnOnce(&C, &[String]) -> Option<Result<PretrainSpec<A>>>,
) -> Result<PretrainSpec<A>> {
    let argv: Vec<String> = std::iter::once(tool.to_string())
        .chain(saved.iter().cloned())
        .collect();
    let cli = C::try_parse_from(&argv).map_err(|e| EmberError::bad_input(e.kind().to_string()))?;
    spec_of(&cli, &argv).unwrap_or_else(|| {
        Err(EmberError::bad_input(format!(
            "the run folder is not a {tool} train run"
        )))
    })
}

/// A pre-training tool's whole run: `--show-preset`, the device, the spec of the command
/// line (or with `--resume`, of the saved one), then [`pretrain`] with the method `build`
/// makes.
pub fn run_tool<C: PretrainCli>(
    presets: &Presets,
    invocation: &Invocation<C>,
    build: impl FnOnce(&C::Method, &Build) -> Result<Built>,
) -> Result<Value> {
    let cli = &invocation.cli;
    if let Some(name) = cli.show_preset() {
        return Ok(preset::show(presets.list, name));
    }
    // Every pre-training method trains data-parallel under `ember launch`.
    let (device, _) = cli.runtime().setup_parallel()?;
    let spec = |inv: &Invocation<C>| {
        PretrainSpec::new(
            presets.tool,
            inv.cli.runtime(),
            inv.cli.run_args(),
            inv.cli.method(),
            &inv.expanded,
        )
    };
    let reparse = |argv: &[String]| Ok(spec(&presets.reparse(argv)?));
    pretrain(spec(invocation), &device, reparse, build)
}

/// Pre-trains `spec`, or with `--resume` continues that run; `reparse` turns the run's saved
/// command line back into its spec, `build` makes the method's pretext.
pub fn pretrain<M: Clone>(
    spec: PretrainSpec<M>,
    device: &Device,
    reparse: impl Fn(&[String]) -> Result<PretrainSpec<M>>,
    build: impl FnOnce(&M, &Build) -> Result<Built>,
) -> Result<Value> {
    let resume = spec.args.resume.clone();
    let (spec, resumed) = run_setup::continue_run(spec, resume.as_deref(), reparse, |s| s.threads)?;
    let args = &spec.args;
    args.check()?;
    let settings = args.train.settings(spec.seed)?;
    let overrides = model_overrides(&args.model_config)?;
    let mut model_cfg = ember_models::resolve(&args.arch, &overrides)?;
    let (data, prep) = run_setup::open_data(&args.data)?;
    ember_models::registry::check_input(
        &model_cfg.family,
        &model_cfg.config,
        prep.height,
        prep.width,
    )?;
    model_cfg.fit("in_chans", prep.channels, &overrides)?;
    model_cfg.fit("num_classes", data.classes.len(), &overrides)?;
    let batch_size = args.data.batch_size;
    if batch_size < 2 {
        return Err(EmberError::bad_input(
            "--batch-size must be at least 2: batch normalisation needs a batch",
        ));
    }
    let steps_per_epoch = (data.train.len() / batch_size).max(1);

    let vars = SeededVarMap::new(spec.seed);
    let built = build(
        &spec.method,
        &Build {
            vars: &vars,
            model: &model_cfg,
            prep: &prep,
            batch_size,
            steps_per_epoch,
            total_steps: steps_per_epoch * settings.epochs,
            device,
            dtype: spec.dtype,
            seed: spec.seed,
        },
    )?;
    let loader_cfg = |shuffle: bool| LoaderConfig {
        batch_size,
        shuffle,
        drop_last: shuffle,
        workers: args.data.workers,
        seed: spec.seed,
        shard: if shuffle {
            ember_data::Shard::of_this_process()
        } else {
            ember_data::Shard::WHOLE
        },
    };
    let train = Loader::with_views(
        data.train.clone(),
        built.views.views(&prep),
        loader_cfg(true),
    )?;
    let monitor = Monitor {
        bank: Loader::new(
            bank(data.train.clone(), args.knn_bank),
            prep.eval_pipeline(),
            loader_cfg(false),
        )?,
        queries: Loader::new(data.test.clone(), prep.eval_pipeline(), loader_cfg(false))?,
        knn: Knn {
            k: args.knn_k,
            temperature: args.knn_temperature,
        },
    };

    let (run, resume) =
        run_setup::open_run(resumed, args.out.clone(), spec.tool, &spec.argv, device)?;
    crate::note!(
        "data: {}; kNN bank {} images, queries: {}",
        data.train.source(),
        monitor.bank.dataset().len(),
        data.test.source()
    );
    let report = built.report.clone();
    let mut backbone_meta = CheckpointMeta::new(
        &model_cfg.family,
        model_cfg.config.clone(),
        "classification",
        data.classes.clone(),
    );
    backbone_meta.extra.insert(
        "preprocess".into(),
        serde_json::to_string(&prep).expect("preprocess serialises"),
    );
    backbone_meta
        .extra
        .insert("pretrained".into(), report.to_string());
    let mut run_meta = backbone_meta.clone();
    run_meta.task = "pretraining".into();
    if resume.is_none() {
        let mut config = run.read_json("config.json").unwrap_or(json!({}));
        config["model"] = json!({ "family": model_cfg.family, "config": model_cfg.config });
        config["settings"] = serde_json::to_value(&settings).expect("settings serialise");
        config["preprocess"] = serde_json::to_value(&prep).expect("preprocess serialises");
        config["data"] = json!({ "train": data.train.source(), "test": data.test.source() });
        config["method"] = report.clone();
        run.write_json("config.json", &config)?;
    }
    let trainer = Pretrainer {
        backbone_meta,
        vars: &vars,
        pretext: built.pretext.as_ref(),
        train,
        monitor,
        settings,
        run: run.clone(),
        meta: run_meta,
        device: device.clone(),
        dtype: spec.dtype,
        quiet: args.quiet,
    };
    let summary = trainer.fit(resume.as_ref())?;
    let mut result = json!({
        "command": spec.tool,
        "arch": model_cfg.family,
        "data": data.train.source(),
        "epochs": summary.epochs,
        "knn_top1": summary.knn_top1,
        "best_knn_top1": summary.best_knn_top1,
        "best_epoch": summary.best_epoch,
        "images_per_s": summary.images_per_s,
        "augment_share": summary.augment_share,
        "train_seconds": summary.train_seconds,
        "run_dir": summary.run_dir,
        "backbone": summary.backbone,
    });
    if let Some(fields) = report.as_object() {
        for (k, v) in fields {
            result[k] = v.clone();
        }
    }
    Ok(result)
}

/// `n` evenly spaced training images (all of them for 0 or more than there are).
fn bank(train: Arc<dyn Dataset>, n: usize) -> Arc<dyn Dataset> {
    let len = train.len();
    if n == 0 || n >= len {
        return train;
    }
    let indices = (0..n).map(|i| i * len / n).collect();
    Arc::new(Subset::new(train, indices, "kNN bank"))
}
