//! The momentum (EMA) encoder of BYOL, MoCo, ReSSL and LEWEL: a target network whose weights
//! trail the online network's, `target = m * target + (1 - m) * online`, with no gradient.
//!
//! Unlike [`crate::ema::Ema`] (an average kept beside one model), the target is a second
//! network that runs forward every step, so both live as variables (under their official
//! prefixes, e.g. `encoder_q.` / `encoder_k.`) and this pairs them by name.

use std::f64::consts::PI;

use candle_core::{Result, Var};
use ember_core::checkpoint::is_buffer;

/// What the average covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MomentumScope {
    /// Parameters only; the target's BN statistics are its own (ReSSL, MoCo, LEWEL's SyncBN
    /// recipe, with the target in training mode).
    Parameters,
    /// Parameters and BN running statistics (the EMAN recipe: the target runs in eval mode
    /// on averaged statistics).
    State,
}

/// BYOL's schedule as LEWEL applies it after each optimizer step,
/// `1 - (1 - base) * (cos(pi * step / total) + 1) / 2` with `step` 0-based: the first update
/// uses `base` and the momentum reaches 1 at the end.
pub fn cosine_momentum(base: f64, step: usize, total: usize) -> f64 {
    let t = step as f64 / total.max(1) as f64;
    1.0 - (1.0 - base) * ((PI * t).cos() + 1.0) / 2.0
}

/// Target variables paired with their online counterparts.
pub struct MomentumEncoder {
    /// (target, online)
    pairs: Vec<(Var, Var)>,
}

impl MomentumEncoder {
    /// Pairs every variable named `{target}.{rest}` in `vars` with `{online}.{rest}`, in
    /// `scope`; an online variable without a target (or the reverse) is an error, so the two
    /// networks must be built alike.
    pub fn pair(
        vars: &[(String, Var)],
        online: &str,
        target: &str,
        scope: MomentumScope,
    ) -> Result<Self> {
        let (online, target) = (format!("{online}."), format!("{target}."));
        let in_scope = |name: &str| scope == MomentumScope::State || !is_buffer(name);
        let find = |name: &str| vars.iter().find(|(n, _)| n == name).map(|(_, v)| v);
        let mut pairs = Vec::new();
        for (name, var) in vars {
            if let Some(rest) = name.strip_prefix(&online) {
                if !in_scope(name) {
                    continue;
                }
                let Some(t) = find(&format!("{target}{rest}")) else {
                    candle_core::bail!("momentum encoder: `{name}` has no `{target}{rest}`")
                };
                if t.dims() != var.dims() {
                    candle_core::bail!("momentum encoder: `{name}` and its target differ in shape")
                }
                pairs.push((t.clone(), var.clone()));
            }
        }
        let targets = vars
            .iter()
            .filter(|(n, _)| n.starts_with(&target) && in_scope(n))
            .count();
        if targets != pairs.len() || pairs.is_empty() {
            candle_core::bail!(
                "momentum encoder: {} target variables for {} online ones",
                targets,
                pairs.len()
            )
        }
        Ok(Self { pairs })
    }

    /// Makes the target a copy of the online network (the methods' initialisation).
    pub fn copy_online(&self) -> Result<()> {
        for (target, online) in &self.pairs {
            target.set(&online.as_tensor().detach().copy()?)?;
        }
        Ok(())
    }

    /// `target = m * target + (1 - m) * online`.
    pub fn update(&self, m: f64) -> Result<()> {
        for (target, online) in &self.pairs {
            let blended =
                ((target.as_tensor().detach() * m)? + (online.as_tensor().detach() * (1.0 - m))?)?;
            target.set(&blended)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor};

    fn var(v: &[f32]) -> Var {
        Var::new(v, &Device::Cpu).unwrap()
    }

    #[test]
    fn schedule_starts_at_base_and_ends_at_one() {
        assert!((cosine_momentum(0.98, 0, 10) - 0.98).abs() < 1e-12);
        assert!((cosine_momentum(0.98, 10, 10) - 1.0).abs() < 1e-12);
        assert!((cosine_momentum(0.98, 5, 10) - 0.99).abs() < 1e-12);
    }

    #[test]
    fn averages_parameters_and_leaves_statistics_alone() {
        let vars = vec![
            ("q.w".to_string(), var(&[1.0, 2.0])),
            ("q.bn.running_mean".to_string(), var(&[4.0])),
            ("k.w".to_string(), var(&[3.0, 6.0])),
            ("k.bn.running_mean".to_string(), var(&[0.0])),
        ];
        let enc = MomentumEncoder::pair(&vars, "q", "k", MomentumScope::Parameters).unwrap();
        enc.update(0.5).unwrap();
        assert_eq!(vars[2].1.as_tensor().to_vec1::<f32>().unwrap(), [2.0, 4.0]);
        assert_eq!(vars[3].1.as_tensor().to_vec1::<f32>().unwrap(), [0.0]);
        let all = MomentumEncoder::pair(&vars, "q", "k", MomentumScope::State).unwrap();
        all.update(0.5).unwrap();
        assert_eq!(vars[3].1.as_tensor().to_vec1::<f32>().unwrap(), [2.0]);
        all.copy_online().unwrap();
        let k: Tensor = vars[2].1.as_tensor().clone();
        assert_eq!(k.to_vec1::<f32>().unwrap(), [1.0, 2.0]);
    }

    #[test]
    fn unmatched_networks_are_refused() {
        let vars = vec![
            ("q.w".to_string(), var(&[1.0])),
            ("q.extra".to_string(), var(&[1.0])),
            ("k.w".to_string(), var(&[3.0])),
        ];
        assert!(MomentumEncoder::pair(&vars, "q", "k", MomentumScope::State).is_err());
    }
}
