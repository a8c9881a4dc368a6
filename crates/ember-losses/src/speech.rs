//! TaylorSENet's loss (`ComMagEuclideanLoss`, utils/loss.py): on compressed spectra, a
//! masked distance of the complex values and one of the magnitudes, mixed by alpha. Padded
//! frames of shorter utterances in a batch are masked out.

use candle_core::{Result, Tensor};
use ember_ops::l2_norm_keepdim;

/// Squared (official "L2") or absolute ("L1") differences.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Distance {
    L1,
    L2,
}

/// The loss and its two parts.
#[derive(Debug, Clone)]
pub struct ComMag {
    pub loss: Tensor,
    pub complex: Tensor,
    pub magnitude: Tensor,
}

/// alpha * L_com + (1 - alpha) * L_mag of `estimate` and `target` (B, 2, T, F), with
/// utterance b counting its first `frames[b]` frames: L_com = sum m d(S^ - S) / sum m over
/// (b, ri, t, f); L_mag = sum m d(|S^| - |S|) / sum m over (b, t, f).
pub fn com_mag_loss(
    estimate: &Tensor,
    target: &Tensor,
    frames: &[usize],
    alpha: f64,
    distance: Distance,
) -> Result<ComMag> {
    let (b, _, t, f) = estimate.dims4()?;
    if frames.len() != b {
        candle_core::bail!(
            "com_mag_loss: {} frame counts for a batch of {b}",
            frames.len()
        )
    }
    let mask: Vec<f32> = frames
        .iter()
        .flat_map(|&n| (0..t).map(move |i| f32::from(u8::from(i < n))))
        .collect();
    let mask =
        Tensor::from_vec(mask, (b, 1, t, 1), estimate.device())?.to_dtype(estimate.dtype())?;
    let counted = frames.iter().map(|&n| n.min(t)).sum::<usize>() as f64 * f as f64;
    let dist = |x: Tensor| match distance {
        Distance::L2 => x.sqr(),
        Distance::L1 => x.abs(),
    };
    let masked_mean = |x: Tensor, count: f64| -> Result<Tensor> {
        (ember_ops::broadcast_mul(&x, &mask)?.sum_all()? / count.max(1.0))?.reshape(())
    };
    let complex = masked_mean(dist((estimate - target)?)?, 2.0 * counted)?;
    // torch.norm's gradient: 0, not NaN, where the estimate is exactly 0 (a padded frame of
    // the 0th-order filter's output).
    let magnitude = masked_mean(
        dist((l2_norm_keepdim(estimate, 1)? - l2_norm_keepdim(target, 1)?)?)?,
        counted,
    )?;
    let loss = ((&complex * alpha)? + (&magnitude * (1.0 - alpha))?)?;
    Ok(ComMag {
        loss,
        complex,
        magnitude,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn padded_frames_do_not_count() {
        let dev = Device::Cpu;
        // Two utterances of 2 frames, the second with 1 real frame; one bin.
        let est = Tensor::new(
            &[
                [[[1f32], [5.0]], [[0.0], [0.0]]],
                [[[3.0], [9.0]], [[4.0], [9.0]]],
            ],
            &dev,
        )
        .unwrap();
        let target = Tensor::zeros((2, 2, 2, 1), candle_core::DType::F32, &dev).unwrap();
        let l = com_mag_loss(&est, &target, &[2, 1], 0.5, Distance::L2).unwrap();
        // Counted values: b0 frames 0-1 (re 1, 5; im 0, 0), b1 frame 0 (re 3, im 4).
        let com: f32 = l.complex.to_scalar().unwrap();
        assert!((com - (1.0 + 25.0 + 9.0 + 16.0) / 6.0).abs() < 1e-6);
        let mag: f32 = l.magnitude.to_scalar().unwrap();
        assert!((mag - (1.0 + 25.0 + 25.0) / 3.0).abs() < 1e-5);
        let total: f32 = l.loss.to_scalar().unwrap();
        assert!((total - 0.5 * (com + mag)).abs() < 1e-5);
    }

    #[test]
    fn an_estimate_of_exactly_zero_has_finite_gradients() {
        // The 0th-order filter outputs exact zeros where the input is zero-padded.
        let dev = Device::Cpu;
        let est = candle_core::Var::new(&[[[[1f32, 0.0]], [[2.0, 0.0]]]], &dev).unwrap();
        let target = Tensor::ones((1, 2, 1, 2), candle_core::DType::F32, &dev).unwrap();
        let l = com_mag_loss(est.as_tensor(), &target, &[1], 0.5, Distance::L2).unwrap();
        let grads = l.loss.backward().unwrap();
        let g: Vec<f32> = grads
            .get(est.as_tensor())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        assert!(g.iter().all(|v| v.is_finite()), "{g:?}");
    }
}
