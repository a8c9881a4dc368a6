//! Gradient clipping by global norm (`torch.nn.utils.clip_grad_norm_`).

use candle_core::backprop::GradStore;
use candle_core::{Result, Var};

/// Scales the gradients of `vars` so their joint L2 norm is at most `max_norm`; returns the
/// norm before clipping.
pub fn clip_grad_norm<'a>(
    grads: &mut GradStore,
    vars: impl Iterator<Item = &'a Var> + Clone,
    max_norm: f64,
) -> Result<f64> {
    let mut total = 0f64;
    for v in vars.clone() {
        if let Some(g) = grads.get(v) {
            total += g
                .sqr()?
                .sum_all()?
                .to_dtype(candle_core::DType::F64)?
                .to_scalar::<f64>()?;
        }
    }
    let norm = total.sqrt();
    let scale = max_norm / (norm + 1e-6);
    if scale < 1.0 {
        for v in vars {
            if let Some(g) = grads.remove(v) {
                grads.insert(v, (g * scale)?);
            }
        }
    }
    Ok(norm)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn clips_to_the_max_norm() {
        let a = Var::new(&[3f32], &Device::Cpu).unwrap();
        let b = Var::new(&[4f32], &Device::Cpu).unwrap();
        // loss = 3a + 4b, gradients (3, 4), norm 5
        let loss = ((a.as_tensor() * 3.0).unwrap() + (b.as_tensor() * 4.0).unwrap())
            .unwrap()
            .sum_all()
            .unwrap();
        let mut grads = loss.backward().unwrap();
        let norm = clip_grad_norm(&mut grads, [&a, &b].into_iter(), 1.0).unwrap();
        assert!((norm - 5.0).abs() < 1e-6);
        let ga = grads.get(&a).unwrap().to_vec1::<f32>().unwrap()[0];
        assert!((ga - 0.6).abs() < 1e-5);
        let norm = clip_grad_norm(&mut grads, [&a, &b].into_iter(), 10.0).unwrap();
        assert!((norm - 1.0).abs() < 1e-4, "already within: untouched");
    }
}
