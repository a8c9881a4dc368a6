//! Swin's `WindowAttention` (multi-head self-attention with a relative position bias) run on
//! the groups of a [`Placed`] layout: q, k and v are projected for every token, gathered
//! into group slots, attend within their group under the layout's mask, and go back to token
//! order before the output projection, so padding slots cost attention only.

use candle_core::{Module, Result, Tensor, D};
use candle_nn::{Init, VarBuilder};
use ember_ops::{broadcast_add, softmax};

use super::layout::Placed;
use super::WeightInit;
use crate::layers::Linear;

pub struct WindowAttention {
    qkv: Linear,
    proj: Linear,
    /// `[(2 ws - 1)^2, heads]`.
    bias_table: Tensor,
    heads: usize,
    scale: f64,
}

impl WindowAttention {
    pub fn new(
        vb: VarBuilder,
        dim: usize,
        heads: usize,
        window: usize,
        qkv_bias: bool,
        init: WeightInit,
    ) -> Result<Self> {
        let rows = (2 * window - 1) * (2 * window - 1);
        Ok(Self {
            qkv: init.linear(vb.pp("qkv"), dim, 3 * dim, qkv_bias)?,
            proj: init.linear(vb.pp("proj"), dim, dim, true)?,
            bias_table: vb.get_with_hints(
                (rows, heads),
                "relative_position_bias_table",
                Init::Randn {
                    mean: 0.0,
                    stdev: 0.02,
                },
            )?,
            heads,
            scale: ((dim / heads) as f64).powf(-0.5),
        })
    }

    /// The additive term `[groups, heads, gs, gs]`: the bias of same-window pairs, the
    /// layout's mask on the others.
    fn bias(&self, layout: &Placed) -> Result<Tensor> {
        let (g, gs) = (layout.groups, layout.group_size);
        let table = &self.bias_table;
        let zero_row = Tensor::zeros((1, self.heads), table.dtype(), table.device())?;
        let table = Tensor::cat(&[table, &zero_row], 0)?;
        let bias = table
            .index_select(&layout.bias_rows, 0)?
            .reshape((g, gs, gs, self.heads))?
            .permute((0, 3, 1, 2))?
            .contiguous()?;
        broadcast_add(&bias, &layout.mask)
    }

    /// `x` `[b, n, c]` (normed tokens) -> `[b, n, c]`.
    pub fn forward(&self, x: &Tensor, layout: &Placed) -> Result<Tensor> {
        let (b, n, c) = x.dims3()?;
        let (g, gs, h) = (layout.groups, layout.group_size, self.heads);
        let d = c / h;
        // q, k and v as three projections of the same weights (the backward of slices of
        // one [b, n, 3c] output would pad each back to full size), each `[b, g, h, gs, d]`.
        let grouped = |part: usize| {
            let t = self.qkv.outputs(part * c, c)?.forward(x)?;
            let t = match &layout.gather {
                Some(idx) => t.index_select(idx, 1)?,
                None => t,
            };
            t.reshape((b, g, gs, h, d))?
                .permute((0, 1, 3, 2, 4))?
                .reshape((b * g * h, gs, d))
        };
        let (q, k, v) = (grouped(0)?, grouped(1)?, grouped(2)?);
        // Scaling the logits rather than q (as the official code does) is the same maths.
        let logits = (q.matmul(&k.t()?)? * self.scale)?.reshape((b, g, h, gs, gs))?;
        let p = softmax(&broadcast_add(&logits, &self.bias(layout)?)?, D::Minus1)?;
        let out = p
            .reshape((b * g * h, gs, gs))?
            .matmul(&v)?
            .reshape((b, g, h, gs, d))?
            .permute((0, 1, 3, 2, 4))?
            .reshape((b, g * gs, c))?;
        let out = match &layout.scatter {
            Some(idx) => out.index_select(idx, 1)?,
            None => out,
        };
        debug_assert_eq!(out.dim(1)?, n);
        self.proj.forward(&out)
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{DType, Device, Tensor};

    use super::*;
    use crate::swin::layout::{Mode, WindowLayout};

    #[test]
    fn grouping_and_masking_give_the_same_attention() {
        let map = ember_core::SeededVarMap::new(1);
        let vb = map.var_builder(DType::F32, &Device::Cpu);
        let attn = WindowAttention::new(vb, 8, 2, 4, true, WeightInit::Xavier).unwrap();
        // Every third token of a 12 x 12 grid (an irregular visible set), shifted windows.
        let coords: Vec<[usize; 2]> = (0..144)
            .filter(|t| t % 3 != 1)
            .map(|t| [t / 12, t % 12])
            .collect();
        let x = Tensor::randn(0f32, 1.0, (2, coords.len(), 8), &Device::Cpu).unwrap();
        let run = |mode| {
            let layout = WindowLayout::with_mode(&coords, 4, 2, mode);
            let placed = layout.place(&coords, DType::F32, &Device::Cpu).unwrap();
            attn.forward(&x, &placed).unwrap()
        };
        let (grouped, masked) = (run(Mode::Grouping), run(Mode::Masking));
        let diff = (grouped - masked)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap();
        assert!(diff.to_scalar::<f32>().unwrap() < 1e-5);
    }
}
