//! `ResidualMergePatch`, the downsampling at the start of stages 1 and up: Swin's patch
//! merging (parities (0,0), (1,0), (0,1), (1,1) concatenated, LayerNorm, bias-free
//! reduction) plus a residual 2x2 max-pool of the un-normalised tokens through a bias-free
//! Linear; the global tokens get their own LayerNorm and bias-free Linear. Both LayerNorms
//! use PyTorch's eps 1e-5.

use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

use crate::layers::{linear_normal, LayerNorm, Linear};

pub struct MergePatch {
    norm: LayerNorm,
    reduction: Linear,
    norm2: LayerNorm,
    proj: Linear,
    res_proj: Linear,
    tokens: usize,
}

impl MergePatch {
    pub fn new(dim: usize, out: usize, tokens: usize, vb: VarBuilder) -> Result<Self> {
        let lin = |name: &str, cin| linear_normal(vb.pp(name), cin, out, false, 0.02);
        Ok(Self {
            norm: LayerNorm::new(vb.pp("norm"), 4 * dim, 1e-5)?,
            reduction: lin("reduction", 4 * dim)?,
            norm2: LayerNorm::new(vb.pp("norm2"), dim, 1e-5)?,
            proj: lin("proj", dim)?,
            res_proj: lin("res_proj", dim)?,
            tokens,
        })
    }

    /// `x` `[b, tokens + h * w, c]` with even `h`, `w` -> `[b, tokens + h/2 * w/2, out]`.
    pub fn forward(&self, x: &Tensor, (h, w): (usize, usize)) -> Result<Tensor> {
        let (b, n, c) = x.dims3()?;
        let nt = self.tokens;
        let grid = x
            .narrow(1, nt, n - nt)?
            .reshape(vec![b, h / 2, 2, w / 2, 2, c])?;
        let (h2, w2) = (h / 2, w / 2);
        let part = |row: usize, col: usize| {
            grid.narrow(2, row, 1)?
                .narrow(4, col, 1)?
                .reshape((b, h2 * w2, c))
        };
        let parts = [part(0, 0)?, part(1, 0)?, part(0, 1)?, part(1, 1)?];
        let pooled = parts[0]
            .maximum(&parts[1])?
            .maximum(&parts[2].maximum(&parts[3])?)?;
        let merged = self
            .reduction
            .forward(&self.norm.forward(&Tensor::cat(&parts, 2)?)?)?;
        let image = (merged + self.res_proj.forward(&pooled)?)?;
        let global = self
            .proj
            .forward(&self.norm2.forward(&x.narrow(1, 0, nt)?)?)?;
        Tensor::cat(&[global, image], 1)
    }
}
