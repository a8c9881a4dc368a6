//! How much a convolution matters to the loss, from its weight and the loss gradient
//! (`DyRep.record_metrics`); DyRep grows the slot whose average score is highest.

use std::str::FromStr;

use candle_core::{DType, Result, Tensor};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Importance {
    /// `sum(grad * weight)`, signed (the official default).
    Synflow,
    /// `sum(|grad * weight|)`.
    Snip,
    /// `||grad||_2`.
    GradNorm,
}

impl Importance {
    /// The score of one step, computed in f64: with a train-mode BN after the conv,
    /// synflow is of the order of BN's eps and cancels heavily in f32.
    pub fn score(self, grad: &Tensor, weight: &Tensor) -> Result<f64> {
        let g = grad.detach().to_dtype(DType::F64)?.flatten_all()?;
        let w = weight.detach().to_dtype(DType::F64)?.flatten_all()?;
        let value = match self {
            Importance::Synflow => (g * w)?.sum_all()?,
            Importance::Snip => (g * w)?.abs()?.sum_all()?,
            Importance::GradNorm => g.sqr()?.sum_all()?.sqrt()?,
        };
        value.to_scalar::<f64>()
    }
}

impl FromStr for Importance {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "synflow" => Ok(Importance::Synflow),
            "snip" => Ok(Importance::Snip),
            "grad_norm" | "grad-norm" => Ok(Importance::GradNorm),
            other => Err(format!(
                "unknown importance metric `{other}` (synflow, snip, grad_norm)"
            )),
        }
    }
}
