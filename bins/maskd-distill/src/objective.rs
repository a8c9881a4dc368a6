//! What the student minimises in stage 2: `CE + kd_weight * term` on the logits at the
//! model's output stride, the term one of MasKD and its baselines, all against the frozen
//! teacher's logits of the same batch (live or from the cache). Parts are reported
//! unweighted (`train_ce`, `train_<term>`).

use candle_core::{DType, Tensor};
use ember_cli::teacher::TeacherLogits;
use ember_core::{EmberError, Result};
use ember_losses::{kd_loss, Dist, MaskModule, MaskedLogitLoss, Probabilities};
use ember_train::{CrossEntropy, Objective, StepInput, StepLoss};

/// The distillation term.
pub enum Term {
    /// Labels only.
    None,
    /// Hinton KD per pixel (KL of the softened class distributions, averaged over pixels).
    Kd { tau: f64 },
    /// DIST's segmentation variant: softmax of the raw logits, relations over the classes of
    /// each pixel and over the pixels of each class.
    Dist,
    /// MasKD's loss with one all-ones mask: the same regression on the same logits with no
    /// token attention (the plain feature distillation it is measured against).
    Mse,
    /// MasKD: the regression under each learnt token's mask from the teacher's logits.
    Maskd(Box<MaskModule>),
}

impl Term {
    pub fn name(&self) -> Option<&'static str> {
        match self {
            Term::None => None,
            Term::Kd { .. } => Some("kd"),
            Term::Dist => Some("dist"),
            Term::Mse => Some("mse"),
            Term::Maskd(_) => Some("maskd"),
        }
    }
}

pub struct Distillation {
    pub ce: CrossEntropy,
    pub kd_weight: f64,
    pub term: Term,
    /// `None` for the labels-only baseline.
    pub teacher: Option<TeacherLogits>,
}

impl Distillation {
    fn term(&self, step: &StepInput) -> Result<Option<Tensor>> {
        if matches!(self.term, Term::None) {
            return Ok(None);
        }
        let teacher = self
            .teacher
            .as_ref()
            .ok_or_else(|| EmberError::Runtime("distillation without a teacher".into()))?
            .of(step)?
            .to_dtype(DType::F32)?;
        let student = step.logits.to_dtype(DType::F32)?;
        if teacher.dims() != student.dims() {
            return Err(EmberError::bad_input(format!(
                "the teacher's logits are {:?} and the student's {:?}: give both the same output_stride",
                teacher.dims(),
                student.dims()
            )));
        }
        Ok(Some(match &self.term {
            Term::None => unreachable!("handled above"),
            Term::Kd { tau } => {
                let (s, t) = (pixels(&student)?, pixels(&teacher)?);
                kd_loss(&s, &t, *tau)?
            }
            Term::Dist => Dist {
                beta: 1.0,
                gamma: 1.0,
                tau: None,
                probabilities: Probabilities::Softmax,
            }
            .loss(&student, &teacher)?,
            Term::Mse => {
                let (n, _, h, w) = teacher.dims4()?;
                let ones = Tensor::ones((n, 1, h, w), DType::F32, teacher.device())?;
                MaskedLogitLoss::default().loss(&ones, &student, &teacher)?
            }
            Term::Maskd(module) => {
                let masks = module.masks(&teacher)?.detach();
                MaskedLogitLoss::default().loss(&masks, &student, &teacher)?
            }
        }))
    }
}

/// `[n, k, h, w]` as `[n * h * w, k]` rows.
fn pixels(logits: &Tensor) -> Result<Tensor> {
    let (n, k, h, w) = logits.dims4()?;
    Ok(logits.permute((0, 2, 3, 1))?.reshape((n * h * w, k))?)
}

impl Objective for Distillation {
    fn loss(&self, step: &StepInput) -> Result<StepLoss> {
        if step.logits.rank() != 4 {
            return Err(EmberError::bad_input(
                "maskd-distill distils segmentation models: use a seg_* student on data labelled per pixel",
            ));
        }
        let ce = self.ce.term(step)?;
        let mut total = ce.clone();
        let mut parts = vec![("ce", ce)];
        if let (Some(term), Some(name)) = (self.term(step)?, self.term.name()) {
            total = (total + (&term * self.kd_weight)?)?;
            parts.push((name, term));
        }
        Ok(StepLoss { total, parts })
    }
}
