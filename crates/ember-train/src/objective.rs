//! What a training step minimises, given the student's logits. Plain training minimises the
//! cross-entropy (hard labels with label smoothing, or the soft targets of mixup/cutmix);
//! methods such as distillation bring their own objective and may report its parts, which
//! the trainer averages per epoch into `metrics.jsonl` as `train_<part>`.

use candle_core::Tensor;
use ember_core::Result;
use ember_losses::{cross_entropy, soft_target_cross_entropy};

use crate::segmentation::pixel_rows;

/// One training step as an objective sees it.
pub struct StepInput<'a> {
    /// The batch as the model saw it (after mixing), in the training dtype.
    pub images: &'a Tensor,
    pub logits: &'a Tensor,
    /// Class indices `[n]`, or `[n, h, w]` per pixel for segmentation.
    pub labels: &'a Tensor,
    /// Mixup/cutmix targets `[n, classes]`, when the batch was mixed.
    pub soft_targets: Option<&'a Tensor>,
    /// The dataset index of each image.
    pub indices: &'a [usize],
}

/// The scalar to minimise and, for the record, its named parts (unweighted).
pub struct StepLoss {
    pub total: Tensor,
    pub parts: Vec<(&'static str, Tensor)>,
}

pub trait Objective {
    fn loss(&self, step: &StepInput) -> Result<StepLoss>;
}

/// Cross-entropy with label smoothing, or against the soft targets of a mixed batch; per
/// pixel, averaged over every pixel of the batch, for dense logits `[n, k, h, w]`.
#[derive(Debug, Clone, Copy)]
pub struct CrossEntropy {
    pub smoothing: f64,
}

impl CrossEntropy {
    pub fn term(&self, step: &StepInput) -> Result<Tensor> {
        Ok(match step.soft_targets {
            Some(t) => soft_target_cross_entropy(step.logits, t)?,
            None if step.logits.rank() == 4 => {
                let (rows, targets) = pixel_rows(step.logits, step.labels)?;
                cross_entropy(&rows, &targets, self.smoothing)?
            }
            None => cross_entropy(step.logits, step.labels, self.smoothing)?,
        })
    }
}

impl Objective for CrossEntropy {
    fn loss(&self, step: &StepInput) -> Result<StepLoss> {
        Ok(StepLoss {
            total: self.term(step)?,
            parts: Vec::new(),
        })
    }
}
