//! `torch.nn.functional.normalize(x, p=2, dim, eps=1e-12)`: `x / max(||x||_2, eps)` along one
//! dim, the embedding normalisation of every self-supervised head. It is a composition of
//! candle ops whose gradients are right (the `maximum` passes the gradient to the norm only
//! above `eps`, as PyTorch's `clamp_min`), so it needs no kernel of its own.

use candle_core::{Result, Tensor};

/// PyTorch's default `eps`.
pub const NORMALIZE_EPS: f64 = 1e-12;

/// `x / max(||x||_2 over dim, 1e-12)`.
pub fn l2_normalize(x: &Tensor, dim: usize) -> Result<Tensor> {
    let norm = x.sqr()?.sum_keepdim(dim)?.sqrt()?.maximum(NORMALIZE_EPS)?;
    x.broadcast_div(&norm)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn rows_get_unit_length_and_zero_rows_stay_zero() {
        let x = Tensor::new(&[[3f32, 4.], [0., 0.]], &Device::Cpu).unwrap();
        let y = l2_normalize(&x, 1).unwrap().to_vec2::<f32>().unwrap();
        assert_eq!(y, vec![vec![0.6, 0.8], vec![0.0, 0.0]]);
    }
}
