//! Exponential moving average of the model's weights and buffers, bias-corrected: after the
//! t-th optimizer step the average is `sum_k (1 - d) d^(t-k) x_k / (1 - d^t)`, the weights of
//! the steps so far summing to one. timm's `ModelEmaV2` instead starts the average at the
//! initial weights, which keep a share `d^t` of it: 0.36% after 28k steps at d = 0.9998,
//! enough to wreck batch norm's running variance (initialised to 1, trained to ~0.01-0.1)
//! on a short run (a LightViT on Fashion-MNIST at epoch 21: 18.6% averaged so, 90.0% with
//! the initial share removed). Adam corrects its moments the same way.
//!
//! The corrected average is kept directly, updated as `avg += w_t (x_t - avg)` with
//! `w_t = (1 - d) / (1 - d^t)` (`w_1 = 1`: the first step's weights), so the stored tensors
//! are the average itself; the update count travels in checkpoints because it differs from
//! the step count when f16 steps are skipped. Evaluation swaps the averages into the model
//! and back, so no second copy of the model is built.
//!
//! The average of a bf16/f16 variable is kept in f32 (as the optimizer keeps its master):
//! with a decay of 0.9998 each update moves it by 1/5000 of the gap, far below bf16's
//! spacing, so an average in bf16 would never move.

use candle_core::{DType, Result, Tensor, Var};

use crate::precision::needs_master;

pub struct Ema {
    decay: f64,
    /// Updates so far (t).
    updates: u64,
    /// (name, live variable, average), the average in the variable's dtype, or f32 for a
    /// bf16/f16 variable.
    slots: Vec<(String, Var, Tensor)>,
    /// The live values while the averages are swapped in.
    stash: Option<Vec<Tensor>>,
}

/// How a checkpoint's averages were kept, with their update count.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Saved {
    Corrected(u64),
    InitStarted(u64),
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
    /// Averages of no update yet: the model's current values, which the first update
    /// replaces.
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
            updates: 0,
            slots,
            stash: None,
        })
    }

    pub fn update(&mut self) -> Result<()> {
        self.updates += 1;
        let w = (1.0 - self.decay) / (1.0 - self.decay.powf(self.updates as f64));
        for (_, var, avg) in &mut self.slots {
            let live = var.as_tensor().detach().to_dtype(avg.dtype())?;
            // (1 - w) avg + w live rather than avg + w (live - avg): exactly the live value
            // at w = 1.
            *avg = ((&*avg * (1.0 - w))? + (live * w)?)?;
        }
        Ok(())
    }

    /// Updates so far, for checkpoints.
    pub fn updates(&self) -> u64 {
        self.updates
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

    /// Restores averages saved under `name -> tensor` after `saved` updates: `Corrected(t)`
    /// for checkpoints of this average, `InitStarted(t)` for those of Ember 0.x before the
    /// correction, whose averages `A = d^t start + (1 - d^t) avg` are converted once. Their
    /// start is taken as the averages of [`Ema::new`] (the model as built for the resume),
    /// which is right for a run from the seed's initialisation, not for one from `--init`.
    pub fn load(&mut self, saved: Saved, get: impl Fn(&str) -> Option<Tensor>) -> Result<()> {
        let (updates, start_share) = match saved {
            Saved::Corrected(t) => (t, 0.0),
            Saved::InitStarted(t) => (t, self.decay.powf(t as f64)),
        };
        for (name, var, avg) in &mut self.slots {
            let saved = match get(name) {
                Some(t) if t.dims() == var.dims() => t
                    .to_dtype(average_dtype(var.dtype()))?
                    .to_device(var.device())?,
                _ => candle_core::bail!("the checkpoint holds no EMA weights for {name}"),
            };
            *avg = if start_share > 0.0 && start_share < 1.0 {
                ((saved - (&*avg * start_share)?)? / (1.0 - start_share))?
            } else {
                saved
            };
        }
        self.updates = updates;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// The bias-corrected average written out: `sum_k (1 - d) d^(t-k) x_k / (1 - d^t)`.
    fn reference(xs: &[f64], d: f64) -> f64 {
        let t = xs.len() as i32;
        let sum: f64 = (1..=t)
            .zip(xs)
            .map(|(k, x)| (1.0 - d) * d.powi(t - k) * x)
            .sum();
        sum / (1.0 - d.powi(t))
    }

    fn value(w: &Var) -> Vec<f32> {
        w.as_tensor()
            .to_dtype(DType::F32)
            .unwrap()
            .to_vec1()
            .unwrap()
    }

    fn average(ema: &Ema) -> Vec<f32> {
        ema.named().next().unwrap().1.to_vec1().unwrap()
    }

    /// Sets `w` to each of `xs` in turn and updates after each.
    fn feed(ema: &mut Ema, w: &Var, xs: &[[f32; 2]]) {
        for x in xs {
            w.set(&Tensor::new(x, w.device()).unwrap()).unwrap();
            ema.update().unwrap();
        }
    }

    #[test]
    fn a_constant_is_its_own_average_from_the_first_update() {
        // The initial values (9, -9) are far from the constant: an average started there
        // would keep 0.9998^t of them.
        let w = Var::new(&[9f32, -9.], &Device::Cpu).unwrap();
        let mut ema = Ema::new(vec![("w".into(), w.clone())], 0.9998).unwrap();
        for t in 1..=5 {
            feed(&mut ema, &w, &[[0.25, 4.0]]);
            assert_eq!(average(&ema), vec![0.25, 4.0], "after {t} updates");
        }
        assert_eq!(ema.updates(), 5);
    }

    #[test]
    fn averages_with_the_corrected_weights_and_swaps() {
        let w = Var::new(&[0f32, 10.], &Device::Cpu).unwrap();
        let mut ema = Ema::new(vec![("w".into(), w.clone())], 0.9).unwrap();
        let xs = [[10f32, 0.], [0., 10.], [4., -2.]];
        feed(&mut ema, &w, &xs);
        let want: Vec<f32> = (0..2)
            .map(|i| reference(&xs.map(|x| x[i] as f64), 0.9) as f32)
            .collect();
        let got = average(&ema);
        for (g, r) in got.iter().zip(&want) {
            assert!((g - r).abs() < 1e-5, "{got:?} vs {want:?}");
        }
        ema.swap().unwrap();
        assert_eq!(value(&w), got, "the averages in the model");
        ema.swap().unwrap();
        assert_eq!(value(&w), vec![4.0, -2.0], "the live values back");
        assert!(
            ema.named().all(|(_, t)| !t.track_op()),
            "averages carry no graph"
        );
    }

    #[test]
    fn an_init_started_checkpoint_is_converted_once() {
        let (d, start) = (0.9f64, [3f32, -1.]);
        let xs = [[10f32, 0.], [0., 10.], [4., -2.]];
        // What Ember 0.x kept: start * d^t + sum_k (1 - d) d^(t-k) x_k.
        let legacy: Vec<f32> = (0..2)
            .map(|i| {
                let t = xs.len() as i32;
                let tail: f64 = (1..=t)
                    .zip(&xs)
                    .map(|(k, x)| (1.0 - d) * d.powi(t - k) * x[i] as f64)
                    .sum();
                (start[i] as f64 * d.powi(t) + tail) as f32
            })
            .collect();
        let w = Var::new(&start, &Device::Cpu).unwrap();
        let mut ema = Ema::new(vec![("w".into(), w.clone())], d).unwrap();
        let saved = Tensor::new(legacy.as_slice(), &Device::Cpu).unwrap();
        ema.load(Saved::InitStarted(3), |_| Some(saved.clone()))
            .unwrap();
        assert_eq!(ema.updates(), 3);
        let got = average(&ema);
        for (i, g) in got.iter().enumerate() {
            let r = reference(&xs.map(|x| x[i] as f64), d) as f32;
            assert!((g - r).abs() < 1e-5, "{got:?}");
        }
        // A corrected checkpoint loads as it is.
        ema.load(Saved::Corrected(7), |_| Some(saved.clone()))
            .unwrap();
        assert_eq!((average(&ema), ema.updates()), (legacy, 7));
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
        let (d, early, late) = (0.9999, 1000, 100);
        let w = Var::from_tensor(&bf16(1.0)).unwrap();
        let mut ema = Ema::new(vec![("w".into(), w.clone())], d).unwrap();
        for _ in 0..early {
            ema.update().unwrap();
        }
        w.set(&bf16(2.0)).unwrap();
        for _ in 0..late {
            ema.update().unwrap();
        }
        // 1 + (1 - d^100) / (1 - d^1100) = 1.0955; each late update moves the average by
        // about 0.001, below bf16's spacing at 1 (0.0078), so an average in bf16 would have
        // stayed at 1.
        let xs: Vec<f64> = [vec![1.0; early], vec![2.0; late]].concat();
        let want = reference(&xs, d) as f32;
        let avg = average(&ema)[0];
        assert!((avg - want).abs() < 1e-4, "{avg} vs {want}");
        ema.swap().unwrap();
        assert_eq!(w.dtype(), DType::BF16);
        assert_eq!(value(&w), vec![1.09375], "the average rounded to bf16");
        ema.swap().unwrap();
        assert_eq!(value(&w), vec![2.0], "the live value back");
        assert_eq!(
            average(&ema)[0],
            avg,
            "swapping leaves the f32 average as it was"
        );
    }
}
