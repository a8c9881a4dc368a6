use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

use crate::layers::{linear, Linear};

/// ReSSL's `ProjectionHead`: `linear1` (with bias) -> ReLU -> `linear2` (with bias), no
/// BatchNorm, PyTorch's default Linear initialisation. The output is not normalised: the
/// method normalises it.
#[derive(Debug, Clone)]
pub struct ProjectionHead {
    linear1: Linear,
    linear2: Linear,
}

impl ProjectionHead {
    pub fn new(vb: VarBuilder, dim_in: usize, hidden: usize, dim_out: usize) -> Result<Self> {
        Ok(Self {
            linear1: linear(vb.pp("linear1"), dim_in, hidden)?,
            linear2: linear(vb.pp("linear2"), hidden, dim_out)?,
        })
    }
}

impl Module for ProjectionHead {
    /// `[n, dim_in]` -> `[n, dim_out]`.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.linear2.forward(&self.linear1.forward(x)?.relu()?)
    }
}
