//! What stage 1 and the mask pictures start from: the frozen teacher, the data it was trained
//! on (labelled per pixel, the same classes, its preprocessing) and an evaluation of how the
//! receptive tokens' masks look on the first test images.

use std::str::FromStr;
use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use ember_cli::teacher::Teacher;
use ember_core::{EmberError, Result};
use ember_data::source::Subset;
use ember_data::{DataSource, Dataset, Loader, LoaderConfig, OpenedData, Preprocess};
use ember_losses::{dice_diversity, MaskModule};
use ember_train::Confusion;

pub struct TeacherData {
    pub teacher: Teacher,
    pub prep: Preprocess,
    pub data: OpenedData,
}

impl TeacherData {
    /// The teacher `spec` (a path or `hf://`), frozen, and `data` opened for it.
    pub fn open(spec: &str, data: &str, device: &Device) -> Result<Self> {
        let teacher = Teacher::open(spec, device, DType::F32)?;
        let prep = teacher.preprocess()?;
        let data = ember_data::open(&DataSource::from_str(data)?, prep.channels, prep.height)?;
        if !data.train.dense() {
            return Err(EmberError::bad_input(format!(
                "{} has a label per image: MasKD's tokens are learnt on segmentation data (e.g. --data fashion-seg)",
                data.train.source()
            )));
        }
        teacher.check_labels(&data.classes)?;
        Ok(Self {
            teacher,
            prep,
            data,
        })
    }

    pub fn classes(&self) -> usize {
        self.data.classes.len()
    }

    /// In-order batches of the first `images` test images, as the model sees them.
    pub fn test_loader(&self, images: usize, batch_size: usize, workers: usize) -> Result<Loader> {
        let n = images.min(self.data.test.len()).max(1);
        let first: Arc<dyn Dataset> = Arc::new(Subset::new(
            self.data.test.clone(),
            (0..n).collect(),
            "first test",
        ));
        let cfg = LoaderConfig {
            batch_size,
            shuffle: false,
            drop_last: false,
            workers,
            seed: 0,
            shard: ember_data::Shard::WHOLE,
        };
        Loader::new(first, self.prep.eval_pipeline(), cfg)
    }

    /// The teacher's logits (eval mode; its weights are constants, so no graph).
    pub fn logits(&self, images: &Tensor) -> Result<Tensor> {
        self.teacher.logits(images)
    }
}

/// How the masks of `module` behave on a loader's images.
#[derive(Debug, Clone, Copy)]
pub struct MaskReport {
    /// Mean pairwise Dice between the tokens' masks (lower: more distinct).
    pub dice: f64,
    /// mIoU of the teacher's own logits.
    pub teacher_miou: f64,
    /// mIoU of the teacher's logits under the masks (`sum_t M_t * logits`).
    pub masked_miou: f64,
}

pub fn report(
    teacher: &TeacherData,
    module: &MaskModule,
    loader: &Loader,
    device: &Device,
) -> Result<MaskReport> {
    let k = teacher.classes();
    let (mut plain, mut masked) = (Confusion::new(k), Confusion::new(k));
    let (mut dice_sum, mut n) = (0f64, 0usize);
    for batch in loader.epoch(0, 0) {
        let batch = batch?;
        let (x, y) = batch.to_tensors(device)?;
        let logits = teacher.logits(&x)?;
        let out = module.masked(&logits)?;
        plain.add(&logits, &y)?;
        masked.add(&out.output, &y)?;
        let dice = dice_diversity(&out.masks)?.to_scalar::<f32>()? as f64;
        dice_sum += dice * batch.len() as f64;
        n += batch.len();
    }
    Ok(MaskReport {
        dice: dice_sum / n.max(1) as f64,
        teacher_miou: plain.scores().miou,
        masked_miou: masked.scores().miou,
    })
}
