//! Dense-prediction metrics: pixel top-k accuracy and the confusion matrix behind mean IoU
//! (per class `TP / (TP + FP + FN)`, averaged over the classes present in the labels or the
//! predictions, as mmseg and torchmetrics do).

use candle_core::{DType, Result, Tensor};
use ember_ops::{upsample_bilinear2d, Resize};
use serde::Serialize;

/// `(top1, top5)` correct pixels of logits `[n, k, h', w']` (upsampled to the labels' size)
/// against classes `[n, h, w]`: a pixel counts when fewer than k classes score strictly
/// above its label.
pub fn pixel_topk_correct(logits: &Tensor, maps: &Tensor, ks: [usize; 2]) -> Result<[usize; 2]> {
    let logits = at_label_size(&logits.to_dtype(DType::F32)?, maps)?;
    let target = logits.gather(&maps.to_dtype(DType::U32)?.unsqueeze(1)?.contiguous()?, 1)?;
    let above = logits
        .broadcast_gt(&target)?
        .to_dtype(DType::U32)?
        .sum(1)?
        .flatten_all()?
        .to_vec1::<u32>()?;
    let mut counts = [0usize; 2];
    for (count, &k) in counts.iter_mut().zip(&ks) {
        *count = above.iter().filter(|&&a| (a as usize) < k).count();
    }
    Ok(counts)
}

/// Pixel counts by (label, prediction), `classes x classes`.
#[derive(Debug, Clone, PartialEq)]
pub struct Confusion {
    classes: usize,
    counts: Vec<u64>,
}

/// What a segmentation evaluation reports (percent).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SegScores {
    pub miou: f64,
    pub pixel_accuracy: f64,
    /// IoU per class; `None` for a class neither labelled nor predicted anywhere.
    pub class_iou: Vec<Option<f64>>,
}

impl Confusion {
    pub fn new(classes: usize) -> Self {
        Self {
            classes,
            counts: vec![0; classes * classes],
        }
    }

    /// Adds the argmax of logits `[n, k, h', w']` (upsampled to the labels' size) against
    /// classes `[n, h, w]`.
    pub fn add(&mut self, logits: &Tensor, maps: &Tensor) -> Result<()> {
        let pred = at_label_size(&logits.to_dtype(DType::F32)?, maps)?
            .argmax(1)?
            .flatten_all()?
            .to_vec1::<u32>()?;
        let truth = maps.to_dtype(DType::U32)?.flatten_all()?.to_vec1::<u32>()?;
        for (&t, &p) in truth.iter().zip(&pred) {
            let (t, p) = (t as usize, p as usize);
            if t >= self.classes {
                candle_core::bail!("label {t} is out of range for {} classes", self.classes)
            }
            self.counts[t * self.classes + p] += 1;
        }
        Ok(())
    }

    /// The counts, `[label * classes + prediction]`.
    pub fn counts(&self) -> &[u64] {
        &self.counts
    }

    /// Replaces the counts (by the sums over the ranks of a data-parallel evaluation).
    pub fn set_counts(&mut self, counts: Vec<u64>) {
        assert_eq!(
            counts.len(),
            self.counts.len(),
            "a confusion of the same classes"
        );
        self.counts = counts;
    }

    pub fn scores(&self) -> SegScores {
        let k = self.classes;
        let at = |t: usize, p: usize| self.counts[t * k + p] as f64;
        let total: f64 = self.counts.iter().map(|&c| c as f64).sum();
        let correct: f64 = (0..k).map(|c| at(c, c)).sum();
        let class_iou: Vec<Option<f64>> = (0..k)
            .map(|c| {
                let labelled: f64 = (0..k).map(|p| at(c, p)).sum();
                let predicted: f64 = (0..k).map(|t| at(t, c)).sum();
                let union = labelled + predicted - at(c, c);
                (union > 0.0).then(|| 100.0 * at(c, c) / union)
            })
            .collect();
        let present: Vec<f64> = class_iou.iter().flatten().copied().collect();
        SegScores {
            miou: present.iter().sum::<f64>() / present.len().max(1) as f64,
            pixel_accuracy: 100.0 * correct / total.max(1.0),
            class_iou,
        }
    }
}

/// Logits `[n, k, h', w']` at the size of the labels `[n, h, w]`: a model may predict at a
/// coarser stride, and its logits are then upsampled bilinearly (`align_corners=False`, as
/// mmseg's `resize`) for the loss and the metrics, as the official seg code does.
pub fn at_label_size(logits: &Tensor, maps: &Tensor) -> Result<Tensor> {
    let (n, _, lh, lw) = logits.dims4()?;
    let (mn, h, w) = maps.dims3()?;
    if mn != n || lh > h || lw > w {
        candle_core::bail!(
            "segmentation: logits {:?} do not fit labels {:?}",
            logits.dims(),
            maps.dims()
        )
    }
    if (lh, lw) == (h, w) {
        return Ok(logits.clone());
    }
    upsample_bilinear2d(logits, Resize::Size(h, w), false)
}

/// `[n, k, h', w']` logits (upsampled to the labels' size) as `[n * h * w, k]` rows, and
/// `[n, h, w]` classes as `[n * h * w]`.
pub fn pixel_rows(logits: &Tensor, maps: &Tensor) -> Result<(Tensor, Tensor)> {
    let logits = at_label_size(logits, maps)?;
    let (n, k, h, w) = logits.dims4()?;
    let rows = logits.permute((0, 2, 3, 1))?.reshape((n * h * w, k))?;
    Ok((rows, maps.flatten_all()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn miou_and_pixel_accuracy_by_hand() {
        let dev = Device::Cpu;
        // 1 image, 3 classes, 1x4 pixels; predictions 0, 1, 1, 2 against labels 0, 1, 2, 2.
        let logits = Tensor::new(
            &[[[[5f32, 0., 0., 0.]], [[0., 5., 5., 0.]], [[0., 0., 0., 5.]]]],
            &dev,
        )
        .unwrap();
        let maps = Tensor::new(&[[[0u32, 1, 2, 2]]], &dev).unwrap();
        let mut c = Confusion::new(3);
        c.add(&logits, &maps).unwrap();
        let s = c.scores();
        assert_eq!(s.pixel_accuracy, 75.0);
        // IoU: class 0 1/1, class 1 1/2, class 2 1/2.
        assert_eq!(s.class_iou, vec![Some(100.0), Some(50.0), Some(50.0)]);
        assert!((s.miou - 200.0 / 3.0).abs() < 1e-9);
        assert_eq!(pixel_topk_correct(&logits, &maps, [1, 2]).unwrap(), [3, 4]);
    }
}
