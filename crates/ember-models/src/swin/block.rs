//! The pre-norm Swin block: `x + attn(LN(x))`, then `x + mlp(LN(x))` (fc1, exact GELU, fc2),
//! with stochastic depth on both branches. The window attention runs on whatever layout the
//! stage gives it (shifted or not, all tokens or the visible ones).

use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

use super::attention::WindowAttention;
use super::layout::Placed;
use super::WeightInit;
use crate::layers::{Dropout, LayerNorm, Linear, Noise};

/// The transformer MLP under `mlp.`: `fc2(GELU(fc1(x)))`, exact GELU (shared with the ViT
/// blocks of MAE's decoder).
pub struct Mlp {
    fc1: Linear,
    fc2: Linear,
}

impl Mlp {
    pub fn new(vb: VarBuilder, dim: usize, mlp_ratio: f64, init: WeightInit) -> Result<Self> {
        let hidden = (dim as f64 * mlp_ratio) as usize;
        Ok(Self {
            fc1: init.linear(vb.pp("fc1"), dim, hidden, true)?,
            fc2: init.linear(vb.pp("fc2"), hidden, dim, true)?,
        })
    }
}

impl Module for Mlp {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.fc2
            .forward(&self.fc1.forward(x)?.apply(&ember_ops::gelu)?)
    }
}

pub struct Block {
    norm1: LayerNorm,
    attn: WindowAttention,
    norm2: LayerNorm,
    mlp: Mlp,
    drop_path: Dropout,
}

pub struct BlockShape {
    pub dim: usize,
    pub heads: usize,
    pub window: usize,
    pub mlp_ratio: f64,
    pub qkv_bias: bool,
    pub eps: f64,
    pub drop_path: f64,
}

impl Block {
    pub fn new(s: &BlockShape, noise: &Noise, init: WeightInit, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            norm1: LayerNorm::new(vb.pp("norm1"), s.dim, s.eps)?,
            attn: WindowAttention::new(vb.pp("attn"), s.dim, s.heads, s.window, s.qkv_bias, init)?,
            norm2: LayerNorm::new(vb.pp("norm2"), s.dim, s.eps)?,
            mlp: Mlp::new(vb.pp("mlp"), s.dim, s.mlp_ratio, init)?,
            drop_path: Dropout::path(s.drop_path, noise),
        })
    }

    pub fn forward_t(&self, x: &Tensor, layout: &Placed, train: bool) -> Result<Tensor> {
        let a = self.attn.forward(&self.norm1.forward(x)?, layout)?;
        let x = (x + self.drop_path.forward_t(&a, train)?)?;
        let m = self.mlp.forward(&self.norm2.forward(&x)?)?;
        x + self.drop_path.forward_t(&m, train)?
    }
}
