//! Top-k accuracy: a sample counts when fewer than k classes score strictly higher than its
//! label (ties resolved in the label's favour, as `torch.topk` usually does for the first
//! index).

use candle_core::{DType, Result, Tensor};

/// `(top1 correct, top5 correct)` counts in a batch of logits `[n, k]` and labels `[n]`.
pub fn topk_correct(logits: &Tensor, labels: &[u32], ks: [usize; 2]) -> Result<[usize; 2]> {
    let rows: Vec<Vec<f32>> = logits.to_dtype(DType::F32)?.to_vec2()?;
    let mut counts = [0usize; 2];
    for (row, &y) in rows.iter().zip(labels) {
        let target = row[y as usize];
        let above = row.iter().filter(|&&v| v > target).count();
        for (count, &k) in counts.iter_mut().zip(&ks) {
            if above < k {
                *count += 1;
            }
        }
    }
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn counts_top1_and_top2() {
        let logits = Tensor::new(
            &[[0.1f32, 0.7, 0.2], [0.5, 0.3, 0.2], [0.2, 0.3, 0.5]],
            &Device::Cpu,
        )
        .unwrap();
        assert_eq!(topk_correct(&logits, &[1, 1, 0], [1, 2]).unwrap(), [1, 2]);
    }
}
