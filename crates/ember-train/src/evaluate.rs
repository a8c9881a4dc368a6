//! Evaluation of a classifier over a loader: mean cross-entropy, top-1 and top-5 accuracy.

use candle_core::{DType, Device};
use ember_core::Result;
use ember_data::Loader;
use ember_losses::cross_entropy;
use ember_models::Classifier;
use serde::Serialize;

use crate::metrics::topk_correct;

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct EvalResult {
    pub loss: f64,
    /// Percent.
    pub top1: f64,
    /// Percent.
    pub top5: f64,
    pub images: usize,
}

/// Runs `model` in eval mode over every batch of `loader` (epoch 0, in order).
pub fn evaluate(
    model: &dyn Classifier,
    loader: &Loader,
    device: &Device,
    dtype: DType,
) -> Result<EvalResult> {
    let (mut loss_sum, mut correct, mut n) = (0f64, [0usize; 2], 0usize);
    for batch in loader.epoch(0, 0) {
        let batch = batch?;
        let (x, y) = batch.to_tensors(device)?;
        let logits = model.forward_t(&x.to_dtype(dtype)?, false)?;
        let loss = cross_entropy(&logits, &y, 0.0)?.to_scalar::<f32>()? as f64;
        loss_sum += loss * batch.len() as f64;
        let c = topk_correct(&logits, &batch.labels, [1, 5])?;
        correct[0] += c[0];
        correct[1] += c[1];
        n += batch.len();
    }
    let pct = |c: usize| 100.0 * c as f64 / n.max(1) as f64;
    Ok(EvalResult {
        loss: loss_sum / n.max(1) as f64,
        top1: pct(correct[0]),
        top5: pct(correct[1]),
        images: n,
    })
}
