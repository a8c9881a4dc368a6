//! The teacher of a distillation tool: a frozen checkpoint of any registered arch, checked
//! against the student's data (same labels, same input size and normalisation), its accuracy
//! measured before distillation starts, and its logits either computed live each step or
//! cached once.

use candle_core::{DType, Device, Tensor};
use ember_core::hub::HubEnv;
use ember_core::{Checkpoint, EmberError, Result};
use ember_data::{describe_classes, Loader, LoaderConfig, Preprocess};
use ember_models::{load_frozen, Classifier};
use ember_train::progress::Progress;
use ember_train::{evaluate, EvalResult, StepInput};

use crate::supervised::Setup;

pub struct Teacher {
    pub spec: String,
    pub model: Box<dyn Classifier>,
    pub checkpoint: Checkpoint,
}

impl Teacher {
    /// Loads `spec` (a path or `hf://`) frozen.
    pub fn open(spec: &str, device: &Device, dtype: DType) -> Result<Self> {
        let path = HubEnv::from_env().resolve(spec)?;
        let (model, checkpoint) = load_frozen(&path, device, dtype)?;
        Ok(Self {
            spec: spec.to_string(),
            model,
            checkpoint,
        })
    }

    /// Loads `spec` frozen, and refuses a teacher for other data.
    pub fn load(spec: &str, setup: &Setup) -> Result<Self> {
        let teacher = Self::open(spec, setup.device, setup.dtype)?;
        teacher.check_labels(&setup.data.classes)?;
        teacher.check_inputs(setup.prep)?;
        Ok(teacher)
    }

    /// [`Teacher::load`], then its score on the student's test set, printed and returned
    /// (top-1, or mIoU for segmentation).
    pub fn load_evaluated(spec: &str, setup: &Setup) -> Result<(Self, EvalResult)> {
        let teacher = Self::load(spec, setup)?;
        let eval = teacher.evaluate(setup)?;
        crate::note!(
            "teacher: {spec} ({}) {} {:.2}% on {}",
            teacher.arch(),
            eval.headline_name(),
            eval.headline(),
            setup.data.test.source()
        );
        Ok((teacher, eval))
    }

    /// The input size and normalisation the teacher was trained with.
    pub fn preprocess(&self) -> Result<Preprocess> {
        Preprocess::of_checkpoint(&self.checkpoint.meta, &format!("--teacher {}", self.spec))
    }

    pub fn arch(&self) -> &str {
        &self.checkpoint.meta.arch
    }

    /// Refuses a teacher trained on other classes than `classes`.
    pub fn check_labels(&self, classes: &[String]) -> Result<()> {
        let labels = &self.checkpoint.meta.labels;
        if labels == classes {
            return Ok(());
        }
        Err(EmberError::bad_input(format!(
            "--teacher {} knows {}, the data has {}: a teacher must be trained on the student's labels",
            self.spec,
            describe_classes(labels),
            describe_classes(classes)
        )))
    }

    fn check_inputs(&self, student: &Preprocess) -> Result<()> {
        let prep = self.preprocess()?;
        let dims = |p: &Preprocess| format!("{}x{}x{}", p.channels, p.height, p.width);
        if dims(&prep) != dims(student) {
            return Err(EmberError::bad_input(format!(
                "--teacher {} takes {} inputs, the student's data gives {}: set --image-size to the teacher's",
                self.spec,
                dims(&prep),
                dims(student)
            )));
        }
        let close = |a: &[f32], b: &[f32]| {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() <= 1e-6)
        };
        if !close(&prep.mean, &student.mean) || !close(&prep.std, &student.std) {
            return Err(EmberError::bad_input(format!(
                "--teacher {} was trained with normalisation mean {:?} std {:?}, the student's data uses {:?} {:?}",
                self.spec, prep.mean, prep.std, student.mean, student.std
            )));
        }
        Ok(())
    }

    /// Test-set accuracy, on the student's evaluation loader.
    pub fn evaluate(&self, setup: &Setup) -> Result<EvalResult> {
        evaluate(self.model.as_ref(), setup.eval, setup.device, setup.dtype)
    }

    /// Eval-mode logits of a batch.
    pub fn logits(&self, images: &Tensor) -> Result<Tensor> {
        Ok(self.model.forward_t(images, false)?)
    }

    /// The logits of every training image, by dataset index, through `loader` (the training
    /// set with the training pipeline, which must be deterministic): `[classes]` per image for
    /// a classifier, `[classes, h, w]` for a segmentation model.
    pub fn cache(
        &self,
        loader: &Loader,
        device: &Device,
        dtype: DType,
        quiet: bool,
    ) -> Result<Cache> {
        let n = loader.dataset().len();
        let mut logits = Vec::new();
        let mut item_shape = Vec::new();
        let progress = Progress::new(
            "teacher logits".into(),
            loader.batches_per_epoch(),
            0,
            quiet,
        );
        for (k, batch) in loader.epoch(0, 0).enumerate() {
            let batch = batch?;
            let (x, _) = batch.to_tensors(device)?;
            let out = self.logits(&x.to_dtype(dtype)?)?.to_dtype(DType::F32)?;
            if item_shape.is_empty() {
                item_shape = out.dims()[1..].to_vec();
                // Allocated on the first batch, once the per-image size is known.
                logits = vec![0f32; n * item_shape.iter().product::<usize>()];
            }
            let size: usize = item_shape.iter().product();
            let out: Vec<f32> = out.flatten_all()?.to_vec1()?;
            for (row, &i) in out.chunks_exact(size).zip(&batch.indices) {
                logits[i * size..(i + 1) * size].copy_from_slice(row);
            }
            progress.update(k + 1, "");
        }
        progress.finish();
        Ok(Cache { logits, item_shape })
    }
}

/// An in-order, deterministic loader over the training set: what the cache is computed with.
pub fn cache_loader(setup: &Setup) -> Result<Loader> {
    let cfg = LoaderConfig {
        batch_size: setup.train.batch_size(),
        shuffle: false,
        drop_last: false,
        workers: setup.spec.args.data.workers,
        seed: setup.spec.seed,
        shard: ember_data::Shard::WHOLE,
    };
    Loader::new(
        setup.train.dataset().clone(),
        setup.prep.train_pipeline(0, false),
        cfg,
    )
}

/// Teacher logits of the training set, by dataset index.
pub struct Cache {
    logits: Vec<f32>,
    /// One image's logits: `[classes]` or `[classes, h, w]`.
    item_shape: Vec<usize>,
}

impl Cache {
    /// The rows of `indices`, as `[n, ...item_shape]` f32 on `device`.
    pub fn rows(&self, indices: &[usize], device: &Device) -> Result<Tensor> {
        let size: usize = self.item_shape.iter().product();
        let mut out = Vec::with_capacity(indices.len() * size);
        for &i in indices {
            out.extend_from_slice(&self.logits[i * size..(i + 1) * size]);
        }
        let mut shape = vec![indices.len()];
        shape.extend_from_slice(&self.item_shape);
        Ok(Tensor::from_vec(out, shape, device)?)
    }
}

/// Where a distillation step's teacher logits come from.
pub enum TeacherLogits {
    /// The teacher runs on each batch.
    Live(Box<Teacher>),
    /// Read by dataset index from logits computed once (inputs identical every epoch).
    Cached(Cache),
}

impl TeacherLogits {
    /// The teacher's logits as a run uses them: computed once over the training set when
    /// `cached` (its inputs must be the same every epoch), else live on each batch.
    pub fn new(teacher: Teacher, cached: bool, setup: &Setup) -> Result<Self> {
        if !cached {
            return Ok(TeacherLogits::Live(Box::new(teacher)));
        }
        let loader = cache_loader(setup)?;
        let logits = teacher.cache(&loader, setup.device, setup.dtype, setup.quiet)?;
        Ok(TeacherLogits::Cached(logits))
    }

    /// The teacher's logits for a training step's batch.
    pub fn of(&self, step: &StepInput) -> Result<Tensor> {
        match self {
            TeacherLogits::Live(t) => t.logits(step.images),
            TeacherLogits::Cached(c) => c.rows(step.indices, step.logits.device()),
        }
    }
}
