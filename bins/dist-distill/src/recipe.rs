//! The distillation flags and the recipe they resolve to, with the official weights as
//! defaults: DIST is `CE + 2 * DIST` at tau 1, beta = gamma = 1 (image_classification_sota
//! `resnet_dist.yaml`); KD is `0.9 * CE + 1 * KD` at tau 4 (`resnet_kdt4.yaml`).

use clap::Args;
use ember_core::{EmberError, Result};
use ember_losses::{Dist, Probabilities};
use serde_json::{json, Value};

#[derive(Debug, Clone, Args)]
pub struct DistillArgs {
    /// Teacher checkpoint: a path or hf://owner/repo[@rev]/file.safetensors, any registered
    /// arch trained on the same labels; frozen, in eval mode, run without a graph.
    #[arg(long, value_name = "CKPT")]
    pub teacher: Option<String>,
    /// Student arch (see `ember info --arch`); its config with --student-config JSON|FILE.
    #[arg(long, value_name = "ARCH")]
    pub student: Option<String>,
    /// What the student learns from: ce (labels only, the baseline), kd (Hinton KD) or dist.
    #[arg(long, default_value = "dist", value_parser = ["ce", "kd", "dist"])]
    pub loss: String,
    /// Weight of the cross-entropy [default: 1 with dist and ce, 0.9 with kd].
    #[arg(long, value_name = "W")]
    pub ce_weight: Option<f64>,
    /// Weight of the distillation term [default: 2 with dist, 1 with kd].
    #[arg(long, value_name = "W")]
    pub kd_weight: Option<f64>,
    /// Temperature of the distillation term [default: 1 with dist, 4 with kd].
    #[arg(long, value_name = "T")]
    pub tau: Option<f64>,
    /// DIST's beta: the weight on the inter-class relation.
    #[arg(long, default_value_t = 1.0, value_name = "W")]
    pub dist_beta: f64,
    /// DIST's gamma: the weight on the intra-class relation.
    #[arg(long, default_value_t = 1.0, value_name = "W")]
    pub dist_gamma: f64,
    /// Compute the teacher's logits of the training set once and reuse them every epoch.
    /// Needs inputs that do not change between epochs: --crop-padding 0 --no-flip, no mixup
    /// or cutmix.
    #[arg(long)]
    pub cache_teacher: bool,
}

/// The distillation term.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Term {
    /// Labels only.
    None,
    Kd {
        tau: f64,
    },
    Dist(Dist),
}

/// `ce_weight * CE + kd_weight * term`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Recipe {
    pub ce_weight: f64,
    pub kd_weight: f64,
    pub term: Term,
}

impl DistillArgs {
    pub fn recipe(&self) -> Result<Recipe> {
        let finite = |name: &str, v: f64| {
            if v.is_finite() && v >= 0.0 {
                Ok(v)
            } else {
                Err(EmberError::bad_input(format!(
                    "--{name} must be a finite number >= 0, got {v}"
                )))
            }
        };
        let (ce, kd, tau) = match self.loss.as_str() {
            "kd" => (0.9, 1.0, 4.0),
            "dist" => (1.0, 2.0, 1.0),
            _ => (1.0, 0.0, 1.0),
        };
        let ce_weight = finite("ce-weight", self.ce_weight.unwrap_or(ce))?;
        let kd_weight = finite("kd-weight", self.kd_weight.unwrap_or(kd))?;
        let tau = self.tau.unwrap_or(tau);
        if !(tau.is_finite() && tau > 0.0) {
            return Err(EmberError::bad_input(format!(
                "--tau must be a positive number, got {tau}"
            )));
        }
        let term = match self.loss.as_str() {
            "kd" => Term::Kd { tau },
            "dist" => Term::Dist(Dist {
                beta: finite("dist-beta", self.dist_beta)?,
                gamma: finite("dist-gamma", self.dist_gamma)?,
                tau: Some(tau),
                probabilities: Probabilities::Softmax,
            }),
            _ => Term::None,
        };
        Ok(Recipe {
            ce_weight,
            kd_weight,
            term,
        })
    }
}

impl Recipe {
    /// The name of the distillation term in metrics (`train_kd`, `train_dist`).
    pub fn term_name(&self) -> Option<&'static str> {
        match self.term {
            Term::None => None,
            Term::Kd { .. } => Some("kd"),
            Term::Dist(_) => Some("dist"),
        }
    }

    pub fn describe(&self) -> Value {
        match self.term {
            Term::None => json!({ "loss": "ce", "ce_weight": self.ce_weight }),
            Term::Kd { tau } => json!({
                "loss": "kd", "ce_weight": self.ce_weight, "kd_weight": self.kd_weight, "tau": tau,
            }),
            Term::Dist(d) => json!({
                "loss": "dist", "ce_weight": self.ce_weight, "kd_weight": self.kd_weight,
                "tau": d.tau, "beta": d.beta, "gamma": d.gamma,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Flags {
        #[command(flatten)]
        args: DistillArgs,
    }

    fn recipe(flags: &[&str]) -> Result<Recipe> {
        let argv = std::iter::once("t").chain(flags.iter().copied());
        Flags::try_parse_from(argv).unwrap().args.recipe()
    }

    #[test]
    fn defaults_are_the_official_weights() {
        let dist = recipe(&[]).unwrap();
        assert_eq!((dist.ce_weight, dist.kd_weight), (1.0, 2.0));
        assert_eq!(dist.term, Term::Dist(Dist::default()));
        let kd = recipe(&["--loss", "kd"]).unwrap();
        assert_eq!(
            (kd.ce_weight, kd.kd_weight, kd.term),
            (0.9, 1.0, Term::Kd { tau: 4.0 })
        );
        assert_eq!(recipe(&["--loss", "ce"]).unwrap().term, Term::None);
    }

    #[test]
    fn every_weight_and_temperature_is_overridable_and_checked() {
        let r = recipe(&[
            "--tau",
            "4",
            "--kd-weight",
            "1",
            "--dist-beta",
            "2",
            "--dist-gamma",
            "0.5",
        ])
        .unwrap();
        let Term::Dist(d) = r.term else { panic!() };
        assert_eq!(
            (d.tau, d.beta, d.gamma, r.kd_weight),
            (Some(4.0), 2.0, 0.5, 1.0)
        );
        assert!(recipe(&["--tau", "0"]).is_err());
        assert!(recipe(&["--ce-weight=-1"]).is_err());
        assert!(recipe(&["--dist-beta", "nan"]).is_err());
    }
}
