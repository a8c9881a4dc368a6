use std::sync::{Arc, Mutex};

use candle_core::{Result, Tensor};
use ember_core::EmberRng;

/// The random source of a model's stochastic layers (drop path, dropout), shared by all of
/// them. The trainer reseeds it before every training step from (run seed, step), so a run
/// draws the same masks whether it ran straight through or was resumed, and whatever the
/// thread count. Layers draw in forward order, which is fixed.
#[derive(Debug, Clone, Default)]
pub struct Noise(Arc<Mutex<Option<EmberRng>>>);

impl Noise {
    pub fn reseed(&self, seed: u64) {
        *self.0.lock().unwrap() = Some(EmberRng::new(seed));
    }

    /// Bernoulli(`keep`) values of `shape` scaled by `1 / keep` (the inverted-dropout mask).
    fn keep_mask(&self, shape: &[usize], keep: f64, like: &Tensor) -> Result<Tensor> {
        let mut guard = self.0.lock().unwrap();
        let rng = guard.get_or_insert_with(|| EmberRng::new(0));
        let n = shape.iter().product();
        let values: Vec<f32> = (0..n)
            .map(|_| {
                if rng.bernoulli(keep) {
                    (1.0 / keep) as f32
                } else {
                    0.0
                }
            })
            .collect();
        Tensor::from_vec(values, shape, like.device())?.to_dtype(like.dtype())
    }
}

/// `torch.nn.Dropout(rate)` (each element zeroed with probability `rate` in training), or
/// with [`Dropout::path`] stochastic depth (timm's `DropPath`: each sample's residual branch
/// dropped as a whole); survivors are scaled by `1 / (1 - rate)`.
#[derive(Debug, Clone)]
pub struct Dropout {
    rate: f64,
    noise: Noise,
    whole_samples: bool,
}

impl Dropout {
    pub fn new(rate: f64, noise: &Noise) -> Self {
        Self {
            rate,
            noise: noise.clone(),
            whole_samples: false,
        }
    }

    /// Drop path: one draw per sample.
    pub fn path(rate: f64, noise: &Noise) -> Self {
        Self {
            whole_samples: true,
            ..Self::new(rate, noise)
        }
    }

    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        if !train || self.rate == 0.0 {
            return Ok(x.clone());
        }
        let keep = 1.0 - self.rate;
        if self.whole_samples {
            let mut shape = vec![1; x.rank()];
            shape[0] = x.dim(0)?;
            ember_ops::broadcast_mul(x, &self.noise.keep_mask(&shape, keep, x)?)
        } else {
            x.mul(&self.noise.keep_mask(x.dims(), keep, x)?)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    fn ones() -> Tensor {
        Tensor::ones((64, 3, 2), DType::F32, &Device::Cpu).unwrap()
    }

    #[test]
    fn drop_path_drops_whole_samples_and_rescales_survivors() {
        let noise = Noise::default();
        noise.reseed(5);
        let y = Dropout::path(0.25, &noise)
            .forward_t(&ones(), true)
            .unwrap();
        let rows: Vec<Vec<f32>> = y.flatten_from(1).unwrap().to_vec2().unwrap();
        let kept = rows.iter().filter(|r| r[0] != 0.0).count();
        for r in &rows {
            let v = r[0];
            assert!(r.iter().all(|&x| x == v), "a sample is dropped as a whole");
            assert!(v == 0.0 || (v - 1.0 / 0.75).abs() < 1e-6, "{v}");
        }
        assert!((30..64).contains(&kept), "kept {kept} of 64 at rate 0.25");
        let eval = Dropout::path(0.25, &noise)
            .forward_t(&ones(), false)
            .unwrap();
        assert_eq!(eval.sum_all().unwrap().to_scalar::<f32>().unwrap(), 384.0);
    }

    #[test]
    fn the_same_seed_draws_the_same_masks() {
        let draw = |seed| {
            let noise = Noise::default();
            noise.reseed(seed);
            let y = Dropout::new(0.5, &noise).forward_t(&ones(), true).unwrap();
            y.flatten_all().unwrap().to_vec1::<f32>().unwrap()
        };
        assert_eq!(draw(1), draw(1));
        assert_ne!(draw(1), draw(2));
    }
}
