//! Exponential moving average of the model's weights and buffers (timm's `ModelEmaV2`):
//! `ema = decay * ema + (1 - decay) * model` after every optimizer step. Evaluation swaps the
//! averages into the model and back, so no second copy of the model is built.
//!
//! The average of a bf16/f16 variable is kept in f32 (as the optimizer keeps its master):
//! with a decay of 0.9998 each update moves it by 1/5000 of the gap, far below bf16's
//! spacing, so an average in bf16 would never move.

use candle_core::{DType, Result, Tensor, Var};

use crate::precision::needs_master;

pub struct Ema {
    decay: f64,
    /// (name, live variable, average), the average in the variable's dtype, or f32 for a
    /// bf16/f16 variable.
    slots: Vec<(String, Var, Tensor)>,
    /// The live values while the averages are swapped in.
    stash: Option<Vec<Tensor>>,
}

/// The type an average of a `dtype` variable is kept in.
fn average_dtype(dtype: DType) -> DType {
    if needs_master(dtype) {
        DType::F32
    } else {
        dtype
    }
}

impl Ema {
    /// Starts the averages at the model's current values.
    pub fn new(vars: Vec<(String, Var)>, decay: f64) -> Result<Self> {
        let slots = vars
            .into_iter()
            .map(|(n, v)| {
                // Detached, or each average would chain a graph back to the first step.
                let copy = v
                    .as_tensor()
                    .detach()
                    .to_dtype(average_dtype(v.dtype()))?
                    .copy()?;
                Ok((n, v, copy))
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            decay,
            slots,
            stash: None,
        })
    }

    pub fn update(&mut self) -> Result<()> {
        for (_, var, avg) in &mut self.slots {
            let live = var.as_tensor().detach().to_dtype(avg.dtype())?;
            *avg = ((&*avg * self.decay)? + (live * (1.0 - self.decay))?)?;
        }
        Ok(())
    }

    /// Puts the averages into the model; the next call puts the live values back (the
    /// averages themselves stay as they are, in full precision).
    pub fn swap(&mut self) -> Result<()> {
        match self.stash.take() {
            None => {
                let mut live = Vec::with_capacity(self.slots.len());
                for (_, var, avg) in &self.slots {
                    live.push(var.as_tensor().detach().copy()?);
                    var.set(&avg.to_dtype(var.dtype())?)?;
                }
                self.stash = Some(live);
            }
            Some(live) => {
                for ((_, var, _), value) in self.slots.iter().zip(live) {
                    var.set(&value)?;
                }
            }
        }
        Ok(())
    }

    /// The averages by name, for checkpoints.
    pub fn named(&self) -> impl Iterator<Item = (&String, &Tensor)> {
        self.slots.iter().map(|(n, _, t)| (n, t))
    }

    /// Restores averages saved under `name -> tensor`.
    pub fn load(&mut self, get: impl Fn(&str) -> Option<Tensor>) -> Result<()> {
        for (name, var, avg) in &mut self.slots {
            match get(name) {
                Some(t) if t.dims() == var.dims() => {
                    *avg = t
                        .to_dtype(average_dtype(var.dtype()))?
                        .to_device(var.device())?
                }
                _ => candle_core::bail!("the checkpoint holds no EMA weights for {name}"),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn averages_and_swaps() {
        let w = Var::new(&[0f32, 10.], &Device::Cpu).unwrap();
        let mut ema = Ema::new(vec![("w".into(), w.clone())], 0.9).unwrap();
        w.set(&Tensor::new(&[10f32, 0.], &Device::Cpu).unwrap())
            .unwrap();
        ema.update().unwrap();
        ema.swap().unwrap();
        assert_eq!(w.as_tensor().to_vec1::<f32>().unwrap(), vec![1.0, 9.0]);
        ema.swap().unwrap();
        assert_eq!(w.as_tensor().to_vec1::<f32>().unwrap(), vec![10.0, 0.0]);
        assert!(
            ema.named().all(|(_, t)| !t.track_op()),
            "averages carry no graph"
        );
    }

    #[test]
    fn a_bf16_variable_is_averaged_in_f32() {
        let dev = Device::Cpu;
        let bf16 = |x: f32| {
            Tensor::new(&[x], &dev)
                .unwrap()
                .to_dtype(DType::BF16)
                .unwrap()
        };
        let w = Var::from_tensor(&bf16(1.0)).unwrap();
        let mut ema = Ema::new(vec![("w".into(), w.clone())], 0.999).unwrap();
        w.set(&bf16(2.0)).unwrap();
        for _ in 0..100 {
            ema.update().unwrap();
        }
        // 1 + (1 - 0.999^100) = 1.0952; each update (+0.001) is below bf16's spacing at 1
        // (0.0078), so an average in bf16 would have stayed at 1.
        let avg = ema.named().next().unwrap().1.to_vec1::<f32>().unwrap()[0];
        assert!((avg - 1.0952).abs() < 1e-3, "{avg}");
        ema.swap().unwrap();
        assert_eq!(w.dtype(), DType::BF16);
        let swapped = w
            .as_tensor()
            .to_dtype(DType::F32)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()[0];
        assert_eq!(swapped, 1.09375, "the average rounded to bf16");
        ema.swap().unwrap();
        let back = w
            .as_tensor()
            .to_dtype(DType::F32)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()[0];
        assert_eq!(back, 2.0, "the live value back");
        let kept = ema.named().next().unwrap().1.to_vec1::<f32>().unwrap()[0];
        assert_eq!(kept, avg, "swapping leaves the f32 average as it was");
    }
}
