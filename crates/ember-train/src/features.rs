//! Frozen-backbone features and what is measured on them: the weighted kNN monitor of
//! self-supervised runs (InstDisc / solo-learn: cosine similarity, the k most similar bank
//! entries vote with weight `exp(sim / T)`) and the inputs of a linear probe.

use candle_core::{DType, Device, Tensor};
use ember_core::Result;
use ember_data::Loader;
use ember_models::Classifier;
use ember_ops::l2_normalize;

/// Eval-mode pooled features `[n, d]` (f32, on `device`) of every image of `loader` (epoch
/// 0 in order, so unshuffled loaders give dataset order), with their labels.
pub fn extract(
    model: &dyn Classifier,
    loader: &Loader,
    device: &Device,
    dtype: DType,
) -> Result<(Tensor, Vec<u32>)> {
    let mut chunks = Vec::new();
    let mut labels = Vec::new();
    for batch in loader.epoch(0, 0) {
        let batch = batch?;
        let (x, _) = batch.to_tensors(device)?;
        chunks.push(
            model
                .features(&x.to_dtype(dtype)?, false)?
                .detach()
                .to_dtype(DType::F32)?,
        );
        labels.extend_from_slice(&batch.labels);
    }
    Ok((Tensor::cat(&chunks, 0)?, labels))
}

/// Weighted kNN settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Knn {
    pub k: usize,
    pub temperature: f64,
}

impl Default for Knn {
    /// InstDisc's k = 200 and T = 0.1 (what ReSSL's monitor used).
    fn default() -> Self {
        Self {
            k: 200,
            temperature: 0.1,
        }
    }
}

/// Queries per similarity block (bounds the `[block, bank]` matrix).
const BLOCK: usize = 1024;

impl Knn {
    /// Top-1 accuracy (percent) of classifying `queries` by their neighbours in `bank`.
    pub fn accuracy(
        &self,
        bank: &Tensor,
        bank_labels: &[u32],
        queries: &Tensor,
        query_labels: &[u32],
        classes: usize,
    ) -> Result<f64> {
        let bank = l2_normalize(bank, 1)?.t()?.contiguous()?;
        let queries = l2_normalize(queries, 1)?;
        let n = query_labels.len();
        let k = self.k.min(bank_labels.len()).max(1);
        let mut correct = 0usize;
        for start in (0..n).step_by(BLOCK) {
            let rows = BLOCK.min(n - start);
            let sims: Vec<Vec<f32>> = queries.narrow(0, start, rows)?.matmul(&bank)?.to_vec2()?;
            for (row, &label) in sims.iter().zip(&query_labels[start..start + rows]) {
                let mut order: Vec<usize> = (0..row.len()).collect();
                order.select_nth_unstable_by(k - 1, |&a, &b| row[b].total_cmp(&row[a]));
                let mut votes = vec![0f64; classes];
                for &i in &order[..k] {
                    votes[bank_labels[i] as usize] += (row[i] as f64 / self.temperature).exp();
                }
                let best = (0..classes)
                    .max_by(|&a, &b| votes[a].total_cmp(&votes[b]))
                    .unwrap_or(0);
                correct += usize::from(best == label as usize);
            }
        }
        Ok(100.0 * correct as f64 / n.max(1) as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn neighbours_vote_for_their_class() {
        let dev = Device::Cpu;
        // Class 0 points along x, class 1 along y.
        let bank = Tensor::new(&[[1f32, 0.1], [0.9, 0.0], [0.0, 1.0], [0.1, 0.8]], &dev).unwrap();
        let queries = Tensor::new(&[[1f32, 0.2], [0.2, 1.0]], &dev).unwrap();
        let knn = Knn {
            k: 2,
            temperature: 0.1,
        };
        let acc = knn
            .accuracy(&bank, &[0, 0, 1, 1], &queries, &[0, 1], 2)
            .unwrap();
        assert_eq!(acc, 100.0);
        let wrong = knn
            .accuracy(&bank, &[0, 0, 1, 1], &queries, &[1, 0], 2)
            .unwrap();
        assert_eq!(wrong, 0.0);
    }
}
