//! Training ScaleNet's super-supernet: a [`Pretext`] the pre-training loop drives (data,
//! checkpoints, `--resume`). Each step draws one sub-network hierarchically (from the run
//! seed and the step, so a resumed run draws the same ones), resizes the batch to its
//! resolution and trains it with the official label smoothing (0.9 on the target, 0.1 / (K - 1)
//! on every other class). The coupling counters ride in the checkpoint so a resumed run
//! continues their alternation.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use ember_core::{EmberRng, Result, SeededVarMap};
use ember_losses::cross_entropy;
use ember_models::scalenet::blocks::{NormMode, Side, Sides};
use ember_models::scalenet::{Subnet, SuperSupernet};
use ember_models::Classifier;
use ember_train::optim::ParamGroup;
use ember_train::trainer::parameters;
use ember_train::{Pretext, StepLoss};

use super::sampling::sample_subnet;

pub struct SuperSupernetTraining {
    pub net: SuperSupernet,
    /// The official synchronous mode (`asyn: False`): every step forwards its sub-network
    /// on the left and on the right channels, half the loss each, so consecutive layers
    /// always share a side. Otherwise (`asyn: True`, the official setting) each module's own
    /// counter picks its side, and one pass may mix sides.
    pub synchronous: bool,
    /// The prefix of the net's variables in the run's var map.
    pub prefix: String,
    seed: u64,
}

/// The coupling counters' name in the pretext state of `last.safetensors`.
pub const PHASES_KEY: &str = "lateral_phases";

/// The official smoothing (`s-softmax`: target 0.9, others 0.1 / (K - 1)) as the uniform
/// smoothing `e` of `cross_entropy` (target `1 - e + e / K`, others `e / K`).
pub fn official_smoothing(classes: usize) -> f64 {
    0.1 * classes as f64 / (classes as f64 - 1.0).max(1.0)
}

impl SuperSupernetTraining {
    pub fn new(net: SuperSupernet, synchronous: bool, prefix: &str, seed: u64) -> Self {
        Self {
            net,
            synchronous,
            prefix: prefix.to_string(),
            seed,
        }
    }

    /// The sub-network of training step `step` and its scaling stage.
    pub fn draw(&self, step: usize) -> (usize, Subnet) {
        let mut rng = EmberRng::for_name(self.seed, &format!("scalenet/draw/{step}"));
        sample_subnet(self.net.space(), &mut rng)
    }
}

impl Pretext for SuperSupernetTraining {
    fn loss(&self, views: &[Tensor], labels: &[u32], step: usize) -> Result<StepLoss> {
        let x = &views[0];
        let y = Tensor::new(labels, x.device())?;
        let (_, subnet) = self.draw(step);
        let smoothing = official_smoothing(self.net.space().num_classes);
        let ce = |sides: Sides| -> Result<Tensor> {
            let logits = self.net.forward(x, &subnet, sides, NormMode::TRAIN)?;
            Ok(cross_entropy(&logits.to_dtype(DType::F32)?, &y, smoothing)?)
        };
        if !self.synchronous {
            let ce = ce(Sides::Counted)?;
            return Ok(StepLoss {
                total: ce.clone(),
                parts: vec![("ce", ce)],
            });
        }
        let (left, right) = (
            ce(Sides::Fixed(Side::Left))?,
            ce(Sides::Fixed(Side::Right))?,
        );
        Ok(StepLoss {
            total: ((&left + &right)? * 0.5)?,
            parts: vec![("left", left), ("right", right)],
        })
    }

    /// The official groups: conv weights at twice the weight decay, conv biases and BN
    /// parameters at none, the classifier at the base rate.
    fn groups(&self, vars: &SeededVarMap, weight_decay: f64) -> Vec<ParamGroup> {
        let (mut conv, mut none, mut base) = (Vec::new(), Vec::new(), Vec::new());
        for (name, var) in parameters(vars) {
            if var.rank() == 4 {
                conv.push((name, var));
            } else if name.contains("head_linear") {
                base.push((name, var));
            } else {
                none.push((name, var));
            }
        }
        [
            (conv, 2.0 * weight_decay),
            (none, 0.0),
            (base, weight_decay),
        ]
        .into_iter()
        .map(|(params, weight_decay)| ParamGroup {
            params,
            weight_decay,
            trust: false,
        })
        .collect()
    }

    fn state(&self) -> Vec<(String, Tensor)> {
        let phases: Vec<u32> = self
            .net
            .laterals()
            .iter()
            .map(|l| l.phase() as u32)
            .collect();
        let n = phases.len();
        match Tensor::from_vec(phases, n, &Device::Cpu) {
            Ok(t) => vec![(PHASES_KEY.to_string(), t)],
            Err(_) => Vec::new(),
        }
    }

    fn restore(&self, saved: &HashMap<String, Tensor>) -> Result<()> {
        if let Some(t) = saved.get(PHASES_KEY) {
            let phases: Vec<u32> = t.to_dtype(DType::U32)?.to_vec1()?;
            for (l, p) in self.net.laterals().iter().zip(phases) {
                l.set_phase(p as usize);
            }
        }
        Ok(())
    }

    fn backbone(&self) -> &dyn Classifier {
        &self.net
    }

    fn backbone_prefix(&self) -> &str {
        &self.prefix
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ember_models::scalenet::Space;

    fn training_in(synchronous: bool) -> (SeededVarMap, SuperSupernetTraining) {
        let vars = SeededVarMap::new(0);
        let vb = vars.var_builder(DType::F32, &Device::Cpu).pp("supernet");
        let net = SuperSupernet::new(&Space::fashion(), 2, vb).unwrap();
        (
            vars,
            SuperSupernetTraining::new(net, synchronous, "supernet", 5),
        )
    }

    fn training() -> (SeededVarMap, SuperSupernetTraining) {
        training_in(false)
    }

    #[test]
    fn the_synchronous_mode_halves_a_left_and_a_right_pass() {
        let (_, t) = training_in(true);
        let x = Tensor::randn(0f32, 1.0, (2, 1, 28, 28), &Device::Cpu).unwrap();
        let out = t.loss(std::slice::from_ref(&x), &[1, 2], 3).unwrap();
        let value = |t: &Tensor| t.to_scalar::<f32>().unwrap();
        let (l, r) = (value(&out.parts[0].1), value(&out.parts[1].1));
        assert!((value(&out.total) - 0.5 * (l + r)).abs() < 1e-6 && l != r);
        // The counters are not consulted, so they stay at phase 0.
        assert!(t.net.laterals().iter().all(|l| l.phase() == 0));
    }

    #[test]
    fn the_official_smoothing_puts_point_nine_on_the_target() {
        let e = official_smoothing(10);
        assert!((1.0 - e + e / 10.0 - 0.9).abs() < 1e-12);
        assert!((e / 10.0 - 0.1 / 9.0).abs() < 1e-12);
    }

    #[test]
    fn steps_draw_fixed_subnets_and_the_counters_survive_a_resume() {
        let (vars, t) = training();
        assert_eq!(t.draw(7), t.draw(7));
        let x = Tensor::randn(0f32, 1.0, (2, 1, 28, 28), &Device::Cpu).unwrap();
        let out = t.loss(std::slice::from_ref(&x), &[1, 2], 0).unwrap();
        assert!(out.total.to_scalar::<f32>().unwrap().is_finite());
        let moved: usize = t.net.laterals().iter().map(|l| l.phase()).sum();
        assert!(moved > 0);
        let (_, fresh) = training();
        fresh.restore(&t.state().into_iter().collect()).unwrap();
        let phases = |n: &SuperSupernetTraining| {
            n.net
                .laterals()
                .iter()
                .map(|l| l.phase())
                .collect::<Vec<_>>()
        };
        assert_eq!(phases(&fresh), phases(&t));
        // Conv weights at 2x decay, BN and biases at none, the classifier at 1x.
        let groups = t.groups(&vars, 1e-4);
        assert_eq!(
            groups.iter().map(|g| g.weight_decay).collect::<Vec<_>>(),
            [2e-4, 0.0, 1e-4]
        );
        assert!(groups[2]
            .params
            .iter()
            .all(|(n, _)| n.contains("head_linear")));
        assert_eq!(groups[2].params.len(), 2);
    }
}
