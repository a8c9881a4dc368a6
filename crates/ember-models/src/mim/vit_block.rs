//! timm's ViT `Block` as MAE's decoder uses it: pre-norm full self-attention (qkv with bias)
//! and an MLP (fc1, exact GELU, fc2), LayerNorms with the model's eps.

use candle_core::{Module, Result, Tensor, D};
use candle_nn::VarBuilder;

use crate::layers::{LayerNorm, Linear};
use crate::swin::block::Mlp;
use crate::swin::WeightInit;

pub struct VitBlock {
    norm1: LayerNorm,
    qkv: Linear,
    proj: Linear,
    norm2: LayerNorm,
    mlp: Mlp,
    heads: usize,
}

impl VitBlock {
    pub fn new(
        vb: VarBuilder,
        dim: usize,
        heads: usize,
        mlp_ratio: f64,
        eps: f64,
        init: WeightInit,
    ) -> Result<Self> {
        let va = vb.pp("attn");
        Ok(Self {
            norm1: LayerNorm::new(vb.pp("norm1"), dim, eps)?,
            qkv: init.linear(va.pp("qkv"), dim, 3 * dim, true)?,
            proj: init.linear(va.pp("proj"), dim, dim, true)?,
            norm2: LayerNorm::new(vb.pp("norm2"), dim, eps)?,
            mlp: Mlp::new(vb.pp("mlp"), dim, mlp_ratio, init)?,
            heads,
        })
    }

    fn attention(&self, x: &Tensor) -> Result<Tensor> {
        let (b, n, c) = x.dims3()?;
        let (h, d) = (self.heads, c / self.heads);
        let heads = |part: usize| {
            self.qkv
                .outputs(part * c, c)?
                .forward(x)?
                .reshape((b, n, h, d))?
                .permute((0, 2, 1, 3))?
                .reshape((b * h, n, d))
        };
        let (q, k, v) = (heads(0)?, heads(1)?, heads(2)?);
        let logits = (q.matmul(&k.t()?)? * (d as f64).powf(-0.5))?;
        let out = ember_ops::softmax(&logits, D::Minus1)?
            .matmul(&v)?
            .reshape((b, h, n, d))?
            .permute((0, 2, 1, 3))?
            .reshape((b, n, c))?;
        self.proj.forward(&out)
    }
}

impl Module for VitBlock {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = (x + self.attention(&self.norm1.forward(x)?)?)?;
        let m = self.mlp.forward(&self.norm2.forward(&x)?)?;
        x + m
    }
}
