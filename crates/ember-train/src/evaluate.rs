//! Evaluation of a model over a loader: mean cross-entropy, top-1 and top-5 accuracy, and
//! for per-pixel labels (segmentation) the same per pixel plus mean IoU.

use candle_core::{DType, Device};
use ember_core::Result;
use ember_data::{Loader, Shard};
use ember_losses::cross_entropy;
use ember_models::Classifier;
use serde::Serialize;

use crate::metrics::topk_correct;
use crate::segmentation::{at_label_size, pixel_rows, pixel_topk_correct, Confusion, SegScores};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EvalResult {
    /// Mean cross-entropy per image (per pixel for segmentation).
    pub loss: f64,
    /// Percent of images (pixels) whose label scores highest.
    pub top1: f64,
    /// Percent.
    pub top5: f64,
    pub images: usize,
    /// Mean IoU and the rest, for segmentation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub segmentation: Option<SegScores>,
}

impl EvalResult {
    /// What "best" means: top-1, or mean IoU for segmentation.
    pub fn headline(&self) -> f64 {
        self.segmentation.as_ref().map_or(self.top1, |s| s.miou)
    }

    /// The headline's name in records and results (`top1` or `miou`).
    pub fn headline_name(&self) -> &'static str {
        if self.segmentation.is_some() {
            "miou"
        } else {
            "top1"
        }
    }
}

/// Runs `model` in eval mode over every batch of `loader` (epoch 0, in order). In a
/// data-parallel run each rank takes every N-th batch and the sums are added over the
/// ranks, so every rank returns the whole split's result.
pub fn evaluate(
    model: &dyn Classifier,
    loader: &Loader,
    device: &Device,
    dtype: DType,
) -> Result<EvalResult> {
    let dense = loader.dataset().dense();
    let mut confusion = Confusion::new(loader.dataset().classes().len());
    let (mut loss_sum, mut correct, mut n, mut units) = (0f64, [0usize; 2], 0usize, 0usize);
    let batches = match crate::dist::group() {
        Some(_) => loader.epoch_share(0, Shard::of_this_process()),
        None => loader.epoch(0, 0),
    };
    for batch in batches {
        let batch = batch?;
        let (x, y) = batch.to_tensors(device)?;
        let logits = model.forward_t(&x.to_dtype(dtype)?, false)?;
        let (c, count) = if dense {
            // Upsampled once: the loss and both metrics read the same full-size logits.
            let logits = at_label_size(&logits.to_dtype(DType::F32)?, &y)?;
            let (rows, targets) = pixel_rows(&logits, &y)?;
            let loss = cross_entropy(&rows, &targets, 0.0)?.to_scalar::<f32>()? as f64;
            loss_sum += loss * batch.len() as f64;
            confusion.add(&logits, &y)?;
            (
                pixel_topk_correct(&logits, &y, [1, 5])?,
                targets.elem_count(),
            )
        } else {
            let loss = cross_entropy(&logits, &y, 0.0)?.to_scalar::<f32>()? as f64;
            loss_sum += loss * batch.len() as f64;
            (topk_correct(&logits, &batch.labels, [1, 5])?, batch.len())
        };
        correct[0] += c[0];
        correct[1] += c[1];
        n += batch.len();
        units += count;
    }
    if crate::dist::group().is_some() {
        let mut sums = vec![
            loss_sum,
            correct[0] as f64,
            correct[1] as f64,
            n as f64,
            units as f64,
        ];
        sums.extend(confusion.counts().iter().map(|&c| c as f64));
        let sums = crate::dist::sum_over_ranks(sums, device)?;
        loss_sum = sums[0];
        correct = [sums[1].round() as usize, sums[2].round() as usize];
        (n, units) = (sums[3].round() as usize, sums[4].round() as usize);
        confusion.set_counts(sums[5..].iter().map(|&c| c.round() as u64).collect());
    }
    let pct = |c: usize| 100.0 * c as f64 / units.max(1) as f64;
    Ok(EvalResult {
        loss: loss_sum / n.max(1) as f64,
        top1: pct(correct[0]),
        top5: pct(correct[1]),
        images: n,
        segmentation: dense.then(|| confusion.scores()),
    })
}
