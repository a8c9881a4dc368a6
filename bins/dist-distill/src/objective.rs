//! What the student minimises: `ce_weight * CE + kd_weight * (KD or DIST)` against the
//! teacher's logits of the same (augmented, mixed) batch, computed live or read from the
//! cache. Parts are reported unweighted (`train_ce`, `train_kd` / `train_dist`).

use candle_core::Tensor;
use ember_core::Result;
use ember_losses::kd_loss;
use ember_train::{CrossEntropy, Objective, StepInput, StepLoss};

use crate::recipe::{Recipe, Term};
use ember_cli::teacher::TeacherLogits;

pub struct Distillation {
    pub ce: CrossEntropy,
    pub recipe: Recipe,
    /// `None` for the labels-only baseline.
    pub teacher: Option<TeacherLogits>,
}

impl Distillation {
    fn teacher_logits(&self, step: &StepInput) -> Result<Tensor> {
        match &self.teacher {
            Some(t) => t.of(step),
            None => Err(ember_core::EmberError::Runtime(
                "distillation without a teacher".into(),
            )),
        }
    }
}

impl Objective for Distillation {
    fn loss(&self, step: &StepInput) -> Result<StepLoss> {
        let ce = self.ce.term(step)?;
        let mut total = (&ce * self.recipe.ce_weight)?;
        let mut parts = vec![("ce", ce)];
        let term = match self.recipe.term {
            Term::None => None,
            Term::Kd { tau } => Some(kd_loss(step.logits, &self.teacher_logits(step)?, tau)?),
            Term::Dist(d) => Some(d.loss(step.logits, &self.teacher_logits(step)?)?),
        };
        if let (Some(term), Some(name)) = (term, self.recipe.term_name()) {
            total = (total + (&term * self.recipe.kd_weight)?)?;
            parts.push((name, term));
        }
        Ok(StepLoss { total, parts })
    }
}
