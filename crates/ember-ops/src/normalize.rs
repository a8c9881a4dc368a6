//! Euclidean norms along one dim with PyTorch's gradients at the zero vector, as
//! compositions of candle ops (no kernel of their own).
//!
//! `torch.nn.functional.normalize(x, p=2, dim, eps=1e-12)`: `x / max(||x||_2, eps)` along one
//! dim, the embedding normalisation of every self-supervised head. The clamp sits under the square root,
//! `sqrt(max(sum x^2, eps^2))`, the same value: the gradient of a row below `eps` (an
//! all-zero row) is then blocked before the root, as PyTorch's `clamp_min` blocks it, where
//! `max(sqrt(sum x^2), eps)` would send 0 * inf = NaN back through the root.

use candle_core::{Result, Tensor};

/// PyTorch's default `eps`.
pub const NORMALIZE_EPS: f64 = 1e-12;

/// `x / max(||x||_2 over dim, 1e-12)`.
pub fn l2_normalize(x: &Tensor, dim: usize) -> Result<Tensor> {
    let norm = x
        .sqr()?
        .sum_keepdim(dim)?
        .maximum(NORMALIZE_EPS * NORMALIZE_EPS)?
        .sqrt()?;
    x.broadcast_div(&norm)
}

/// `torch.norm(x, dim=dim, keepdim=True)`, with PyTorch's gradient of 0 at an all-zero
/// vector. `sqrt(sum x^2)` alone sends 0 * inf = NaN back there: a spectrum estimate that is
/// exactly 0 in a zero-padded frame (TaylorSENet's 0th-order filter of a silent input) would
/// poison every gradient of the step.
pub fn l2_norm_keepdim(x: &Tensor, dim: usize) -> Result<Tensor> {
    let squares = x.sqr()?.sum_keepdim(dim)?;
    // 1 for a non-zero vector, else 0: a constant, so no gradient flows through it.
    let nonzero = squares.ne(0.0)?.to_dtype(x.dtype())?;
    // The zero vectors take the root of 1 (a finite derivative), then are masked back to 0.
    let safe = ((&squares * &nonzero)? + nonzero.affine(-1.0, 1.0)?)?;
    safe.sqrt()? * nonzero
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn rows_get_unit_length_and_zero_rows_stay_zero_with_finite_gradients() {
        let x = candle_core::Var::new(&[[3f64, 4.], [0., 0.]], &Device::Cpu).unwrap();
        let y = l2_normalize(x.as_tensor(), 1).unwrap();
        assert_eq!(
            y.to_vec2::<f64>().unwrap(),
            vec![vec![0.6, 0.8], vec![0.0, 0.0]]
        );
        let g = y.sum_all().unwrap().backward().unwrap();
        let g = g.get(x.as_tensor()).unwrap().to_vec2::<f64>().unwrap();
        assert!(g.iter().flatten().all(|v| v.is_finite()), "{g:?}");
    }

    #[test]
    fn norm_of_a_zero_vector_is_zero_with_a_zero_gradient() {
        let x = candle_core::Var::new(&[[3f64, 4.], [0., 0.]], &Device::Cpu).unwrap();
        let n = l2_norm_keepdim(x.as_tensor(), 1).unwrap();
        assert_eq!(n.to_vec2::<f64>().unwrap(), vec![vec![5.0], vec![0.0]]);
        let g = n.sum_all().unwrap().backward().unwrap();
        let g = g.get(x.as_tensor()).unwrap().to_vec2::<f64>().unwrap();
        // x / ||x|| for the non-zero row, 0 for the zero one (PyTorch's values).
        let want = [0.6, 0.8, 0.0, 0.0];
        assert!(
            g.iter()
                .flatten()
                .zip(want)
                .all(|(a, b)| (a - b).abs() < 1e-12),
            "{g:?}"
        );
    }
}
