//! The masked-image-modelling reconstruction loss (MAE's, which GreenMIM keeps): per-unit
//! pixel targets, optionally normalised per unit, and the squared error averaged over the
//! masked units only.

use candle_core::{Result, Tensor, D};

/// Images `[b, c, h, w]` -> units `[b, (h/p) (w/p), p p c]`, each unit's values ordered
/// (row, column, channel) with the channel fastest (MAE's `patchify`).
pub fn patchify(images: &Tensor, p: usize) -> Result<Tensor> {
    let (b, c, h, w) = images.dims4()?;
    if !h.is_multiple_of(p) || !w.is_multiple_of(p) {
        candle_core::bail!("patchify: a {h}x{w} image does not split into {p}x{p} units")
    }
    let (gh, gw) = (h / p, w / p);
    images
        .reshape(vec![b, c, gh, p, gw, p])?
        .permute([0, 2, 4, 3, 5, 1])?
        .reshape((b, gh * gw, p * p * c))
}

/// The inverse of [`patchify`] for a square unit grid: `[b, g g, p p c]` -> `[b, c, g p, g p]`.
pub fn unpatchify(units: &Tensor, p: usize, c: usize) -> Result<Tensor> {
    let (b, n, _) = units.dims3()?;
    let g = (n as f64).sqrt().round() as usize;
    units
        .reshape(vec![b, g, g, p, p, c])?
        .permute([0, 5, 1, 3, 2, 4])?
        .reshape((b, c, g * p, g * p))
}

/// Each unit normalised to zero mean and unit variance, `(t - mean) / sqrt(var + 1e-6)` with
/// the unbiased (n - 1) variance, as the official `norm_pix_loss` does. The target carries
/// no gradient.
pub fn normalize_units(target: &Tensor) -> Result<Tensor> {
    let n = target.dim(D::Minus1)?;
    let t = target.detach();
    let mean = t.mean_keepdim(D::Minus1)?;
    let centred = t.broadcast_sub(&mean)?;
    let var = (centred.sqr()?.sum_keepdim(D::Minus1)? / (n as f64 - 1.0))?;
    centred.broadcast_div(&(var + 1e-6)?.sqrt()?)
}

/// `sum_units(mask * mean_values((pred - target)^2)) / sum(mask)`: `pred` and `target`
/// `[b, units, values]`, `mask` `[b, units]` with 1 on the units that count (the masked ones).
pub fn masked_mse(pred: &Tensor, target: &Tensor, mask: &Tensor) -> Result<Tensor> {
    let per_unit = (pred - target)?.sqr()?.mean(D::Minus1)?;
    (per_unit * mask)?
        .sum_all()?
        .broadcast_div(&mask.sum_all()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn patchify_orders_row_column_channel_and_inverts() {
        let x = Tensor::arange(0f32, 2.0 * 4.0 * 4.0, &Device::Cpu)
            .unwrap()
            .reshape((1, 2, 4, 4))
            .unwrap();
        let u = patchify(&x, 2).unwrap();
        assert_eq!(u.dims(), &[1, 4, 8]);
        // Unit 0: pixels (0,0) (0,1) (1,0) (1,1), channel fastest: c0 then c1 (offset 16).
        let first: Vec<f32> = u.get(0).unwrap().get(0).unwrap().to_vec1().unwrap();
        assert_eq!(first, vec![0., 16., 1., 17., 4., 20., 5., 21.]);
        let back = unpatchify(&u, 2, 2).unwrap();
        let diff = (back - &x).unwrap().abs().unwrap().max_all().unwrap();
        assert_eq!(diff.to_scalar::<f32>().unwrap(), 0.0);
    }

    #[test]
    fn only_masked_units_count() {
        let dev = Device::Cpu;
        let pred = Tensor::new(&[[[1f32, 1.], [3., 3.]]], &dev).unwrap();
        let target = Tensor::zeros((1, 2, 2), candle_core::DType::F32, &dev).unwrap();
        let mask = Tensor::new(&[[0f32, 1.]], &dev).unwrap();
        let loss = masked_mse(&pred, &target, &mask).unwrap();
        assert_eq!(loss.to_scalar::<f32>().unwrap(), 9.0);
    }
}
