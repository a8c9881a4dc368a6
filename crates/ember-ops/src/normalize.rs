//! `torch.nn.functional.normalize(x, p=2, dim, eps=1e-12)`: `x / max(||x||_2, eps)` along one
//! dim, the embedding normalisation of every self-supervised head. It is a composition of
//! candle ops, so it needs no kernel of its own. The clamp sits under the square root,
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
}
