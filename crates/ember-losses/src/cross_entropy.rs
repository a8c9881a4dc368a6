//! Cross-entropy, with the label smoothing of `torch.nn.CrossEntropyLoss(label_smoothing=e)`,
//! and against soft targets (timm's `SoftTargetCrossEntropy`, used with mixup and cutmix).

use candle_core::{DType, Result, Tensor, D};
use candle_nn::ops::log_softmax;

/// `-(1 - e) log p[y] - (e / k) sum_j log p[j]`, averaged over the batch. `targets` are class
/// indices `[n]` (u32 or i64).
pub fn cross_entropy(logits: &Tensor, targets: &Tensor, smoothing: f64) -> Result<Tensor> {
    if !(0.0..1.0).contains(&smoothing) {
        candle_core::bail!("label smoothing must be in [0, 1), got {smoothing}")
    }
    let (n, k) = logits.dims2()?;
    if targets.dims() != [n] {
        candle_core::bail!(
            "cross_entropy: {n} logits rows but targets {:?}",
            targets.dims()
        )
    }
    let logp = log_softmax(&logits.to_dtype(DType::F32)?, D::Minus1)?;
    let picked = logp
        .gather(&targets.to_dtype(DType::U32)?.unsqueeze(1)?, 1)?
        .squeeze(1)?;
    let mut loss = (picked.mean_all()? * -(1.0 - smoothing))?;
    if smoothing > 0.0 {
        let uniform = (logp.sum(D::Minus1)?.mean_all()? * (-smoothing / k as f64))?;
        loss = (loss + uniform)?;
    }
    Ok(loss)
}

/// `-sum_j t[j] log p[j]`, averaged over the batch; `targets` are probabilities `[n, k]`.
pub fn soft_target_cross_entropy(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    if logits.dims() != targets.dims() {
        candle_core::bail!(
            "soft-target cross-entropy: logits {:?} but targets {:?}",
            logits.dims(),
            targets.dims()
        )
    }
    let logp = log_softmax(&logits.to_dtype(DType::F32)?, D::Minus1)?;
    (logp * targets.to_dtype(DType::F32)?)?
        .sum(D::Minus1)?
        .mean_all()?
        .neg()
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn scalar(t: &Tensor) -> f32 {
        t.to_scalar::<f32>().unwrap()
    }

    #[test]
    fn matches_hand_computed_values() {
        // logits [1, 2, 3], target 2: -log softmax = log(e + e^2 + e^3) - 3 = 0.40760596;
        // with e = 0.1: 0.9 * 0.40760596 + 0.1 / 3 * (2.40760596 + 1.40760596 + 0.40760596).
        let logits = Tensor::new(&[[1f32, 2., 3.]], &Device::Cpu).unwrap();
        let y = Tensor::new(&[2u32], &Device::Cpu).unwrap();
        assert!((scalar(&cross_entropy(&logits, &y, 0.0).unwrap()) - 0.407_605_96).abs() < 1e-6);
        assert!((scalar(&cross_entropy(&logits, &y, 0.1).unwrap()) - 0.507_605_96).abs() < 1e-6);
        let hard = Tensor::new(&[[0f32, 0., 1.]], &Device::Cpu).unwrap();
        assert!(
            (scalar(&soft_target_cross_entropy(&logits, &hard).unwrap()) - 0.407_605_96).abs()
                < 1e-6
        );
    }

    #[test]
    fn smoothing_equals_soft_targets_and_has_the_softmax_gradient() {
        let logits = Var::new(
            &[[0.3f32, -1.0, 2.0, 0.5], [1.0, 1.0, -2.0, 0.0]],
            &Device::Cpu,
        )
        .unwrap();
        let y = Tensor::new(&[3u32, 0], &Device::Cpu).unwrap();
        let soft = Tensor::new(
            &[
                [0.025f32, 0.025, 0.025, 0.925],
                [0.925, 0.025, 0.025, 0.025],
            ],
            &Device::Cpu,
        )
        .unwrap();
        let a = cross_entropy(logits.as_tensor(), &y, 0.1).unwrap();
        let b = soft_target_cross_entropy(logits.as_tensor(), &soft).unwrap();
        assert!((scalar(&a) - scalar(&b)).abs() < 1e-6);
        // d/dlogits of the batch mean = (softmax - target) / n
        let grad = a.backward().unwrap().get(&logits).unwrap().clone();
        let expected = ((candle_nn::ops::softmax(logits.as_tensor(), 1).unwrap() - &soft).unwrap()
            / 2.0)
            .unwrap();
        let diff = (grad - expected).unwrap().abs().unwrap().max_all().unwrap();
        assert!(scalar(&diff) < 1e-6);
    }

    #[test]
    fn rejects_mismatched_shapes() {
        let logits = Tensor::zeros((2, 3), DType::F32, &Device::Cpu).unwrap();
        assert!(cross_entropy(&logits, &Tensor::new(&[0u32], &Device::Cpu).unwrap(), 0.0).is_err());
        assert!(soft_target_cross_entropy(
            &logits,
            &Tensor::zeros((2, 4), DType::F32, &Device::Cpu).unwrap()
        )
        .is_err());
    }
}
