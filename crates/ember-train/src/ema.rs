//! Exponential moving average of the model's weights and buffers (timm's `ModelEmaV2`):
//! `ema = decay * ema + (1 - decay) * model` after every optimizer step. Evaluation swaps the
//! averages into the model and back, so no second copy of the model is built.

use candle_core::{Result, Tensor, Var};

pub struct Ema {
    decay: f64,
    /// (name, live variable, average), the average in the variable's dtype.
    slots: Vec<(String, Var, Tensor)>,
}

impl Ema {
    /// Starts the averages at the model's current values.
    pub fn new(vars: Vec<(String, Var)>, decay: f64) -> Result<Self> {
        let slots = vars
            .into_iter()
            .map(|(n, v)| {
                // Detached, or each average would chain a graph back to the first step.
                let copy = v.as_tensor().detach().copy()?;
                Ok((n, v, copy))
            })
            .collect::<Result<_>>()?;
        Ok(Self { decay, slots })
    }

    pub fn update(&mut self) -> Result<()> {
        for (_, var, avg) in &mut self.slots {
            *avg = ((&*avg * self.decay)? + (var.as_tensor().detach() * (1.0 - self.decay))?)?;
        }
        Ok(())
    }

    /// Exchanges the live values with the averages (call again to swap back).
    pub fn swap(&mut self) -> Result<()> {
        for (_, var, avg) in &mut self.slots {
            let live = var.as_tensor().detach().copy()?;
            var.set(avg)?;
            *avg = live;
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
                    *avg = t.to_dtype(var.dtype())?.to_device(var.device())?
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
}
