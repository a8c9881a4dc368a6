//! Logit distillation: vanilla KD (Hinton et al.) and DIST (Huang et al., arXiv 2205.10536),
//! as the official code computes them (hunto/image_classification_sota `kd_loss.py` and
//! `dist_kd.py`; the dense variants of hunto/DIST_KD segmentation and hunto/MasKD mmrazor).
//! Both compute in f32 whatever the logits' dtype. Neither detaches the teacher: the caller
//! runs the teacher without a graph.

use candle_core::{DType, Result, Tensor, D};
use candle_nn::ops::{log_softmax, sigmoid, softmax};

/// `tau^2 * KL(softmax(t / tau) || softmax(s / tau))`, summed over classes and divided by
/// the batch size (PyTorch's `batchmean`). Logits are `[n, classes]`.
pub fn kd_loss(student: &Tensor, teacher: &Tensor, tau: f64) -> Result<Tensor> {
    same_dims("kd", student, teacher)?;
    if tau <= 0.0 {
        candle_core::bail!("kd: the temperature must be positive, got {tau}")
    }
    let n = student.dims()[0];
    let log_s = log_softmax(&(student.to_dtype(DType::F32)? / tau)?, D::Minus1)?;
    let log_t = log_softmax(&(teacher.to_dtype(DType::F32)? / tau)?, D::Minus1)?;
    // p_t (log p_t - log p_s): log-probabilities are finite, so a vanishing p_t gives 0 as
    // torch's xlogy does.
    (log_t.exp()? * (log_t - log_s)?)?.sum_all()? * (tau * tau / n as f64)
}

/// How DIST turns logits into the vectors it correlates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Probabilities {
    /// Softmax over the class axis (the classification and segmentation versions).
    Softmax,
    /// Element-wise sigmoid (mmrazor's `use_sigmoid`, for RetinaNet-style heads).
    Sigmoid,
}

/// The DIST loss `scale * (beta * inter + gamma * intra)`. With a temperature (the
/// classification version) the probabilities are taken of `logits / tau` and `scale` is
/// `tau^2`; without one (the segmentation and detection versions) the logits are used as
/// they are and `scale` is 1.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Dist {
    pub beta: f64,
    pub gamma: f64,
    pub tau: Option<f64>,
    pub probabilities: Probabilities,
}

/// The two relations (each `1 - mean correlation`, without the weights and `tau^2`) and the
/// weighted loss.
pub struct DistTerms {
    pub inter: Tensor,
    pub intra: Tensor,
    pub loss: Tensor,
}

impl Default for Dist {
    /// The official module's defaults: beta = gamma = tau = 1.
    fn default() -> Self {
        Self {
            beta: 1.0,
            gamma: 1.0,
            tau: Some(1.0),
            probabilities: Probabilities::Softmax,
        }
    }
}

impl Dist {
    pub fn loss(&self, student: &Tensor, teacher: &Tensor) -> Result<Tensor> {
        Ok(self.terms(student, teacher)?.loss)
    }

    /// Logits `[n, classes]`, or `[n, classes, h, w]` read as `n * h * w` rows of classes
    /// (so intra correlates each class over every pixel of the batch).
    pub fn terms(&self, student: &Tensor, teacher: &Tensor) -> Result<DistTerms> {
        same_dims("dist", student, teacher)?;
        if let Some(tau) = self.tau {
            if tau <= 0.0 {
                candle_core::bail!("dist: the temperature must be positive, got {tau}")
            }
        }
        let y_s = self.probabilities(&rows(student)?)?;
        let y_t = self.probabilities(&rows(teacher)?)?;
        let inter = (1.0 - pearson_rows(&y_s, &y_t)?.mean_all()?)?;
        let intra =
            (1.0 - pearson_rows(&y_s.t()?.contiguous()?, &y_t.t()?.contiguous()?)?.mean_all()?)?;
        let scale = self.tau.map_or(1.0, |t| t * t);
        let loss = ((&inter * (self.beta * scale))? + (&intra * (self.gamma * scale))?)?;
        Ok(DistTerms { inter, intra, loss })
    }

    fn probabilities(&self, logits: &Tensor) -> Result<Tensor> {
        let z = match self.tau {
            Some(tau) => (logits / tau)?,
            None => logits.clone(),
        };
        match self.probabilities {
            Probabilities::Softmax => softmax(&z, D::Minus1),
            Probabilities::Sigmoid => sigmoid(&z),
        }
    }
}

/// `[n, c]` stays; `[n, c, h, w]` becomes `[n * h * w, c]`. In f32.
fn rows(logits: &Tensor) -> Result<Tensor> {
    let logits = logits.to_dtype(DType::F32)?;
    match logits.rank() {
        2 => Ok(logits),
        4 => {
            let (n, c, h, w) = logits.dims4()?;
            logits.permute((0, 2, 3, 1))?.reshape((n * h * w, c))
        }
        r => candle_core::bail!(
            "dist: logits must be [n, classes] or [n, classes, h, w], got rank {r}"
        ),
    }
}

/// Pearson correlation of each row of `a` with the same row of `b` (`[r, l]` -> `[r]`):
/// centred dot product over the product of the centred L2 norms plus 1e-8, the official
/// formula (no clamping, no n - 1).
fn pearson_rows(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let a = a.broadcast_sub(&a.mean_keepdim(1)?)?;
    let b = b.broadcast_sub(&b.mean_keepdim(1)?)?;
    let dot = (&a * &b)?.sum(1)?;
    dot / ((norm_rows(&a)? * norm_rows(&b)?)? + 1e-8)?
}

/// L2 norm of each row. A row of zeros (a batch of one, centred) must get the zero gradient
/// PyTorch's norm gives it; `sqrt`'s backward divides by the norm, so a tiny constant goes
/// under the root. It changes no norm above 1e-11, and below that the 1e-8 added to the norm
/// product dominates anyway.
fn norm_rows(x: &Tensor) -> Result<Tensor> {
    (x.sqr()?.sum(1)? + 1e-30)?.sqrt()
}

fn same_dims(what: &str, student: &Tensor, teacher: &Tensor) -> Result<()> {
    if student.dims() != teacher.dims() {
        candle_core::bail!(
            "{what}: student logits {:?} but teacher logits {:?}",
            student.dims(),
            teacher.dims()
        )
    }
    if student.rank() < 2 || student.dims()[0] == 0 {
        candle_core::bail!(
            "{what}: expected a non-empty batch of logits, got {:?}",
            student.dims()
        )
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn scalar(t: &Tensor) -> f64 {
        t.to_dtype(DType::F64).unwrap().to_scalar::<f64>().unwrap()
    }

    fn logits(rows: &[&[f32]]) -> Tensor {
        let k = rows[0].len();
        let flat: Vec<f32> = rows.iter().flat_map(|r| r.iter().copied()).collect();
        Tensor::from_vec(flat, (rows.len(), k), &Device::Cpu).unwrap()
    }

    #[test]
    fn kd_matches_a_hand_computed_kl() {
        // One sample, two classes, tau 2: p_t = softmax([0, 2] / 2), p_s = softmax([0, 0]).
        let (s, t) = (logits(&[&[0.0, 0.0]]), logits(&[&[0.0, 2.0]]));
        let pt1 = 1.0 / (1.0 + (-1f64).exp());
        let pt0 = 1.0 - pt1;
        let kl = pt0 * (pt0 / 0.5).ln() + pt1 * (pt1 / 0.5).ln();
        let got = scalar(&kd_loss(&s, &t, 2.0).unwrap());
        assert!((got - 4.0 * kl).abs() < 1e-6, "{got} vs {}", 4.0 * kl);
        assert!(scalar(&kd_loss(&t, &t, 4.0).unwrap()).abs() < 1e-6);
    }

    #[test]
    fn dist_is_zero_for_a_positive_affine_copy_and_two_for_a_reversal() {
        // Pearson is invariant to positive affine maps of the probabilities, not of the
        // logits; a teacher equal to the student gives inter = intra = 0.
        let s = logits(&[&[1.0, 2.0, 3.0], &[0.5, -1.0, 2.0], &[3.0, 0.0, -2.0]]);
        let terms = Dist::default().terms(&s, &s).unwrap();
        assert!(scalar(&terms.inter).abs() < 1e-6);
        assert!(scalar(&terms.intra).abs() < 1e-6);
        // Two classes: the centred probabilities are (d, -d), so reversed logits give
        // correlation -1 per row: inter = 2.
        let a = logits(&[&[0.0, 1.0], &[2.0, 0.0]]);
        let b = logits(&[&[1.0, 0.0], &[0.0, 2.0]]);
        let inter = scalar(&Dist::default().terms(&a, &b).unwrap().inter);
        assert!((inter - 2.0).abs() < 1e-6, "{inter}");
    }

    #[test]
    fn tau_squared_scales_both_terms_and_dense_logits_are_rows_of_pixels() {
        let s = logits(&[&[1.0, 2.0, 0.0], &[0.5, -1.0, 2.0]]);
        let t = logits(&[&[0.0, 1.0, 3.0], &[1.5, 1.0, -2.0]]);
        let dist = Dist {
            beta: 2.0,
            gamma: 0.5,
            tau: Some(3.0),
            probabilities: Probabilities::Softmax,
        };
        let terms = dist.terms(&s, &t).unwrap();
        let expected = 9.0 * (2.0 * scalar(&terms.inter) + 0.5 * scalar(&terms.intra));
        assert!((scalar(&terms.loss) - expected).abs() < 1e-5);
        // [2, 3] logits as a [1, 3, 1, 2] map: the same rows, so the same loss untempered.
        let dense = |x: &Tensor| x.t().unwrap().reshape((1, 3, 1, 2)).unwrap();
        let plain = Dist {
            tau: None,
            ..Dist::default()
        };
        let flat = scalar(&plain.loss(&s, &t).unwrap());
        let map = scalar(&plain.loss(&dense(&s), &dense(&t)).unwrap());
        assert!((flat - map).abs() < 1e-6, "{flat} vs {map}");
    }

    #[test]
    fn a_batch_of_one_has_a_constant_intra_term_and_no_nan_gradient() {
        let s = Var::from_tensor(&logits(&[&[1.0, -2.0, 0.5]])).unwrap();
        let t = logits(&[&[0.0, 1.0, 3.0]]);
        let intra_only = Dist {
            beta: 0.0,
            ..Dist::default()
        };
        let terms = intra_only.terms(s.as_tensor(), &t).unwrap();
        assert!((scalar(&terms.intra) - 1.0).abs() < 1e-12);
        let grads = terms.loss.backward().unwrap();
        let g: Vec<f32> = grads
            .get(&s)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        assert!(g.iter().all(|v| *v == 0.0), "{g:?}");
    }

    #[test]
    fn mismatched_or_empty_logits_are_refused() {
        let s = logits(&[&[1.0, 2.0]]);
        let t = logits(&[&[1.0, 2.0, 3.0]]);
        assert!(Dist::default().loss(&s, &t).is_err());
        assert!(kd_loss(&s, &t, 1.0).is_err());
        assert!(kd_loss(&s, &s, 0.0).is_err());
    }
}
