//! The linear probe of self-supervised evaluation (ReSSL's `linear_eval.py`, scaled): a
//! single linear layer on frozen features, initialised N(0, 0.01^2) with zero bias, trained
//! by SGD (momentum 0.9, no weight decay) with a per-step cosine schedule; the test top-1 is
//! measured after every epoch and both the best (what the official script reports) and the
//! last are kept. Features are extracted once, without augmentation, which is what makes a
//! 100-epoch probe take seconds (the official probe augments every epoch).

use candle_core::{DType, Device, Tensor, Var, D};
use ember_core::{EmberRng, Result};
use ember_losses::cross_entropy;
use serde::Serialize;

use crate::optim::{Method, Optimizer, ParamGroup};
use crate::schedule::{Decay, Schedule};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProbeSettings {
    pub epochs: usize,
    pub lr: f64,
    pub batch_size: usize,
    pub seed: u64,
}

impl Default for ProbeSettings {
    /// ReSSL's: 100 epochs, lr 0.3, batch 256.
    fn default() -> Self {
        Self {
            epochs: 100,
            lr: 0.3,
            batch_size: 256,
            seed: 0,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ProbeResult {
    /// Percent, after the last epoch.
    pub top1: f64,
    pub best_top1: f64,
    pub best_epoch: usize,
    /// The trained layer: weight `[classes, d]` and bias `[classes]` (last epoch).
    #[serde(skip)]
    pub weight: Tensor,
    #[serde(skip)]
    pub bias: Tensor,
}

/// Trains the probe on `train` features `[n, d]` with their labels and tests it on `test`.
pub fn linear_probe(
    train: (&Tensor, &[u32]),
    test: (&Tensor, &[u32]),
    classes: usize,
    s: &ProbeSettings,
) -> Result<ProbeResult> {
    let (x, labels) = train;
    let dev = x.device().clone();
    let (n, d) = x.dims2()?;
    let mut rng = EmberRng::for_name(s.seed, "probe/init");
    let weight =
        Var::from_tensor(&rng.normal_tensor((classes, d), 0.0, 0.01, DType::F32, &dev)?)?;
    let bias = Var::zeros(classes, DType::F32, &dev)?;
    let groups = vec![ParamGroup {
        params: vec![
            ("weight".into(), weight.clone()),
            ("bias".into(), bias.clone()),
        ],
        weight_decay: 0.0,
        trust: false,
    }];
    let method = Method::Sgd {
        momentum: 0.9,
        nesterov: false,
    };
    let mut opt = Optimizer::new(method, groups, s.lr);
    let batch = s.batch_size.clamp(1, n);
    let steps_per_epoch = n.div_ceil(batch);
    let schedule = Schedule {
        base_lr: s.lr,
        warmup_steps: 0,
        warmup_start: 0.0,
        total_steps: steps_per_epoch * s.epochs,
        decay: Decay::Cosine { min_lr: 0.0 },
    };
    let labels_t = Tensor::from_slice(labels, n, &dev)?;
    let (mut best, mut best_epoch, mut last) = (f64::MIN, 0, 0.0);
    let mut step = 0;
    for epoch in 0..s.epochs {
        let order = EmberRng::for_name(s.seed, &format!("probe/shuffle/{epoch}")).permutation(n);
        let order: Vec<u32> = order.into_iter().map(|i| i as u32).collect();
        for chunk in order.chunks(batch) {
            let idx = Tensor::from_slice(chunk, chunk.len(), &dev)?;
            let xb = x.index_select(&idx, 0)?;
            let yb = labels_t.index_select(&idx, 0)?;
            let logits = xb
                .matmul(&weight.as_tensor().t()?)?
                .broadcast_add(bias.as_tensor())?;
            opt.set_lr(schedule.lr(step));
            opt.step(&cross_entropy(&logits, &yb, 0.0)?.backward()?)?;
            step += 1;
        }
        last = accuracy(test, weight.as_tensor(), bias.as_tensor())?;
        if last > best {
            best = last;
            best_epoch = epoch + 1;
        }
    }
    Ok(ProbeResult {
        top1: last,
        best_top1: best,
        best_epoch,
        weight: weight.as_tensor().detach(),
        bias: bias.as_tensor().detach(),
    })
}

fn accuracy(test: (&Tensor, &[u32]), weight: &Tensor, bias: &Tensor) -> Result<f64> {
    let (x, labels) = test;
    let predicted: Vec<u32> = x
        .matmul(&weight.t()?)?
        .broadcast_add(bias)?
        .argmax(D::Minus1)?
        .to_vec1()?;
    let correct = predicted.iter().zip(labels).filter(|(p, y)| p == y).count();
    Ok(100.0 * correct as f64 / labels.len().max(1) as f64)
}

/// A seeded subset of `labels` with `fraction` of each class (at least one per class
/// present): the indices, sorted.
pub fn class_fraction(labels: &[u32], fraction: f64, seed: u64) -> Vec<usize> {
    let classes = labels.iter().map(|&l| l as usize + 1).max().unwrap_or(0);
    let mut kept = Vec::new();
    for c in 0..classes {
        let mut members: Vec<usize> = (0..labels.len())
            .filter(|&i| labels[i] as usize == c)
            .collect();
        if members.is_empty() {
            continue;
        }
        EmberRng::for_name(seed, &format!("fraction/{c}")).shuffle(&mut members);
        let take = ((members.len() as f64 * fraction).round() as usize).clamp(1, members.len());
        kept.extend_from_slice(&members[..take]);
    }
    kept.sort_unstable();
    kept
}

/// Rows `indices` of `x` and of its labels.
pub fn select(
    x: &Tensor,
    labels: &[u32],
    indices: &[usize],
    device: &Device,
) -> Result<(Tensor, Vec<u32>)> {
    let idx: Vec<u32> = indices.iter().map(|&i| i as u32).collect();
    let rows = x.index_select(&Tensor::from_slice(&idx, idx.len(), device)?, 0)?;
    Ok((rows, indices.iter().map(|&i| labels[i]).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separable_features_are_learnt() {
        let dev = Device::Cpu;
        let mut rng = EmberRng::new(0);
        let labels: Vec<u32> = (0..200).map(|i| (i % 2) as u32).collect();
        let data: Vec<f32> = labels
            .iter()
            .flat_map(|&l| {
                let centre = if l == 0 { -1.0 } else { 1.0 };
                [
                    centre + rng.normal(0.0, 0.3) as f32,
                    rng.normal(0.0, 1.0) as f32,
                ]
            })
            .collect();
        let x = Tensor::from_vec(data, (200, 2), &dev).unwrap();
        let s = ProbeSettings {
            epochs: 10,
            lr: 0.3,
            batch_size: 32,
            seed: 0,
        };
        let r = linear_probe((&x, &labels), (&x, &labels), 2, &s).unwrap();
        assert!(r.top1 > 95.0, "{}", r.top1);
        assert!(r.best_top1 >= r.top1 && r.best_epoch >= 1);
    }

    #[test]
    fn fractions_keep_every_class() {
        let labels: Vec<u32> = (0..100).map(|i| (i % 4) as u32).collect();
        let kept = class_fraction(&labels, 0.1, 3);
        assert!(kept.len() >= 8 && kept.len() <= 12, "{}", kept.len());
        for c in 0..4 {
            assert!(kept.iter().any(|&i| labels[i] == c));
        }
        assert_eq!(kept, class_fraction(&labels, 0.1, 3), "seeded");
    }
}
