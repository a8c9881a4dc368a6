//! Mixed precision as the optimizer sees it. A model built in bf16 or f16 (`--dtype`) runs
//! its forward and backward in that type while the optimizer keeps an f32 master copy of
//! every such parameter and steps that (a bf16 weight cannot hold an update 1/256 of its
//! size: without masters, small learning rates stop training). The norms, softmax and
//! losses widen to f32 inside (`ember-ops`, `ember-losses`), as PyTorch's autocast lists
//! them. f16 also needs the loss scaled so that small gradients survive its 5-bit exponent:
//! [`LossScaler`] is `torch.cuda.amp.GradScaler` with its defaults.

use candle_core::backprop::GradStore;
use candle_core::{DType, Result, Tensor, Var};

/// Whether a parameter of this type trains through an f32 master copy.
pub fn needs_master(dtype: DType) -> bool {
    matches!(dtype, DType::BF16 | DType::F16)
}

/// Dynamic loss scaling: the loss is multiplied by `scale` before the backward pass and
/// the gradients divided by it after; a step whose gradients overflowed is skipped and the
/// scale halved, and after `growth_interval` clean steps in a row the scale doubles.
#[derive(Debug, Clone, PartialEq)]
pub struct LossScaler {
    pub scale: f64,
    /// Clean steps since the scale last changed.
    pub clean_steps: u64,
    pub growth_interval: u64,
}

impl Default for LossScaler {
    /// GradScaler's defaults: 2^16, doubling after 2000 clean steps, halving on overflow.
    fn default() -> Self {
        Self {
            scale: 65536.0,
            clean_steps: 0,
            growth_interval: 2000,
        }
    }
}

impl LossScaler {
    /// Backward of `loss` scaled, then the gradients of `params` unscaled in f32. `None`
    /// when any of them is not finite: the caller skips the step (the scale has been halved).
    pub fn backward<'a>(
        &mut self,
        loss: &Tensor,
        params: impl Iterator<Item = &'a Var>,
    ) -> Result<Option<GradStore>> {
        let grads = self.scaled(loss)?.backward()?;
        self.unscale(grads, params)
    }

    /// The loss to differentiate: `loss * scale`, in f32.
    pub fn scaled(&self, loss: &Tensor) -> Result<Tensor> {
        loss.to_dtype(DType::F32)? * self.scale
    }

    /// The gradients of `params` (from the scaled loss) unscaled in f32, and the scale
    /// updated; `None` when any of them is not finite.
    pub fn unscale<'a>(
        &mut self,
        mut grads: GradStore,
        params: impl Iterator<Item = &'a Var>,
    ) -> Result<Option<GradStore>> {
        let mut sums = Vec::new();
        for var in params {
            if let Some(g) = grads.get(var) {
                let g = (g.to_dtype(DType::F32)? / self.scale)?;
                sums.push(g.abs()?.sum_all()?);
                grads.insert(var, g);
            }
        }
        // One device sync for all parameters: the sum is inf or NaN iff some element is.
        let finite = sums.is_empty()
            || Tensor::stack(&sums, 0)?
                .sum_all()?
                .to_dtype(DType::F64)?
                .to_scalar::<f64>()?
                .is_finite();
        self.update(finite);
        Ok(finite.then_some(grads))
    }

    /// The scale after a step whose gradients were (or were not) finite.
    pub fn update(&mut self, finite: bool) {
        if finite {
            self.clean_steps += 1;
            if self.clean_steps >= self.growth_interval {
                self.scale *= 2.0;
                self.clean_steps = 0;
            }
        } else {
            self.scale *= 0.5;
            self.clean_steps = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn the_scale_halves_on_overflow_and_doubles_after_clean_steps() {
        let mut s = LossScaler {
            growth_interval: 3,
            ..Default::default()
        };
        s.update(false);
        assert_eq!(s.scale, 32768.0);
        for _ in 0..2 {
            s.update(true);
        }
        assert_eq!(s.scale, 32768.0);
        s.update(true);
        assert_eq!((s.scale, s.clean_steps), (65536.0, 0));
    }

    #[test]
    fn gradients_come_back_unscaled_in_f32_or_not_at_all() -> Result<()> {
        // Small weights, so that a gradient times 2^16 fits f16 (max 65504).
        let w = Var::new(&[1f32 / 1024., -1. / 512.], &Device::Cpu)?;
        let w16 = Var::from_tensor(&w.as_tensor().to_dtype(DType::F16)?)?;
        let mut s = LossScaler::default();
        // loss = sum(w^2) / 2 in f32 (as the losses are), so grad = w: 64 and -128 scaled.
        let squares = |k: f64| w16.as_tensor().to_dtype(DType::F32)?.sqr()?.sum_all()? * k;
        let grads = s
            .backward(&squares(0.5)?, [&w16].into_iter())?
            .expect("finite");
        let g = grads.get(&w16).unwrap();
        assert_eq!(g.dtype(), DType::F32);
        assert_eq!(g.to_vec1::<f32>()?, w.as_tensor().to_vec1::<f32>()?);
        assert_eq!(s.scale, 65536.0);
        // grad = 2048 w: scaled, -2^17 overflows f16: skipped, scale halved.
        assert!(s.backward(&squares(1024.0)?, [&w16].into_iter())?.is_none());
        assert_eq!(s.scale, 32768.0);
        Ok(())
    }
}
