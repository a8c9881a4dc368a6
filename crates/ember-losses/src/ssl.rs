//! Self-supervised objectives on embeddings: ReSSL's relation loss, MoCo's InfoNCE (ReSSL's
//! optional warm-up and the MoCo baseline), and BYOL's normalised MSE with LEWEL's
//! combination of the global and aligned terms.

use candle_core::{DType, Result, Tensor, D};
use candle_nn::ops::log_softmax;
use ember_ops::{l2_normalize, softmax};

/// ReSSL's loss and the quantities it is made of.
pub struct Relation {
    /// Student similarities to the queue `q Q`, `[n, k]`.
    pub logits_s: Tensor,
    /// Teacher similarities `k Q`, `[n, k]` (no gradient).
    pub logits_t: Tensor,
    /// `softmax(logits_t / tau_t)`: the sharpened teacher relation (no gradient).
    pub p_t: Tensor,
    /// `log_softmax(logits_s / tau_s)`.
    pub log_p_s: Tensor,
    /// `-mean_n sum_k p_t log_p_s`.
    pub loss: Tensor,
}

/// ReSSL's relation loss (`ressl.py`): both embeddings `[n, d]` L2-normalised, the queue
/// `[d, k]` feature-major as the official buffer and taken *before* this step's keys are
/// enqueued. The teacher side is detached.
pub fn relation_loss(
    student: &Tensor,
    teacher: &Tensor,
    queue: &Tensor,
    tau_s: f64,
    tau_t: f64,
) -> Result<Relation> {
    let logits_s = student.matmul(queue)?;
    let logits_t = teacher.detach().matmul(queue)?;
    relation_from_logits(&logits_s, &logits_t, tau_s, tau_t)
}

/// The relation loss from the similarities to the queue, `[n, k]` each.
pub fn relation_from_logits(
    logits_s: &Tensor,
    logits_t: &Tensor,
    tau_s: f64,
    tau_t: f64,
) -> Result<Relation> {
    let logits_t = logits_t.detach();
    let p_t = softmax(&(&logits_t / tau_t)?, D::Minus1)?.detach();
    let log_p_s = log_softmax(&(logits_s / tau_s)?, D::Minus1)?;
    let loss = (&p_t * &log_p_s)?.sum(D::Minus1)?.mean_all()?.neg()?;
    Ok(Relation {
        logits_s: logits_s.clone(),
        logits_t,
        p_t,
        log_p_s,
        loss,
    })
}

/// MoCo's InfoNCE: for each query `q` (`[n, d]`, normalised) the positive is its own key
/// (`[n, d]`, detached) and the negatives the queue `[d, k]`; cross-entropy over `[pos,
/// negs] / tau` with the positive as the class.
pub fn infonce(query: &Tensor, key: &Tensor, queue: &Tensor, tau: f64) -> Result<Tensor> {
    let positive = (query * key.detach())?.sum_keepdim(1)?;
    let negatives = query.matmul(queue)?;
    let logits = (Tensor::cat(&[&positive, &negatives], 1)? / tau)?;
    let log_p = log_softmax(&logits.to_dtype(DType::F32)?, D::Minus1)?;
    log_p.narrow(1, 0, 1)?.mean_all()?.neg()
}

/// BYOL's loss over rows (`mse_loss` in LEWEL): `2 - 2 * mean_rows cos(pred, target)`, the
/// target detached. Both `[rows, d]`.
pub fn normalized_mse(pred: &Tensor, target: &Tensor) -> Result<Tensor> {
    let cos = (l2_normalize(pred, 1)? * l2_normalize(&target.detach(), 1)?)?.sum(1)?;
    (cos.mean_all()? * -2.0)? + 2.0
}

/// `[n, d, k]` embeddings (LEWEL's channel-first layout) as `n * k` rows of `d`.
pub fn as_rows(x: &Tensor) -> Result<Tensor> {
    let (n, d, k) = x.dims3()?;
    x.transpose(1, 2)?.contiguous()?.reshape((n * k, d))
}

/// One direction of LEWEL's BYOL loss (`loss_func`): `w * l(global) + (1 - w) * l(aligned)`,
/// predictions and targets `[n, d, 1]` and `[n, d, k]`; returns (instance term, object term,
/// weighted sum).
pub fn lewel_pair(
    pred_global: &Tensor,
    target_global: &Tensor,
    pred_objects: &Tensor,
    target_objects: &Tensor,
    weight: f64,
) -> Result<(Tensor, Tensor, Tensor)> {
    let instance = normalized_mse(&as_rows(pred_global)?, &as_rows(target_global)?)?;
    let objects = normalized_mse(&as_rows(pred_objects)?, &as_rows(target_objects)?)?;
    let total = ((&instance * weight)? + (&objects * (1.0 - weight))?)?;
    Ok((instance, objects, total))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn t(v: &[[f32; 2]]) -> Tensor {
        Tensor::from_vec(v.concat(), (v.len(), 2), &Device::Cpu).unwrap()
    }

    #[test]
    fn normalized_mse_is_zero_for_parallel_rows_and_four_for_opposite() {
        let a = t(&[[1., 0.], [0., 2.]]);
        let same = normalized_mse(&a, &(&a * 3.0).unwrap()).unwrap();
        let opposite = normalized_mse(&a, &a.neg().unwrap()).unwrap();
        assert!(same.to_scalar::<f32>().unwrap().abs() < 1e-6);
        assert!((opposite.to_scalar::<f32>().unwrap() - 4.0).abs() < 1e-6);
    }

    #[test]
    fn relation_loss_is_the_teacher_entropy_when_both_sides_agree() {
        // Same embedding and temperature: the cross-entropy equals the entropy of p_t.
        let q = l2_normalize(&t(&[[1., 2.], [-1., 0.5]]), 1).unwrap();
        let queue = l2_normalize(&t(&[[1., 0.], [0., 1.]]).t().unwrap(), 0).unwrap();
        let r = relation_loss(&q, &q, &queue, 0.5, 0.5).unwrap();
        let entropy = (&r.p_t * r.p_t.log().unwrap())
            .unwrap()
            .sum_all()
            .unwrap()
            .neg()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
            / 2.0;
        assert!((r.loss.to_scalar::<f32>().unwrap() - entropy).abs() < 1e-6);
    }

    #[test]
    fn infonce_prefers_the_own_key() {
        let q = t(&[[1., 0.]]);
        let queue = t(&[[0., 1.]]).t().unwrap();
        let near = infonce(&q, &q, &queue, 0.2)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        let far = infonce(&q, &q.neg().unwrap(), &queue, 0.2)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(near < 0.01 && far > 5.0, "{near} {far}");
    }
}
