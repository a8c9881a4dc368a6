//! `LightViTAttention`: local window attention among image tokens, global aggregation
//! (global-token queries over all image tokens) and global broadcast (image-token queries
//! over the aggregated global tokens), as three separate softmaxes. The outputs are
//! `proj(cat[aggregated, local + broadcast])`, global tokens first.
//!
//! The k and v that `qkv` makes for the global tokens are never used (as in the official
//! code), and `kv_global` reads the aggregation output before `proj`.

use candle_core::{Module, Result, Tensor, D};
use candle_nn::{Init, VarBuilder};
use ember_ops::softmax;

use crate::layers::{linear_normal, Dropout, Linear, Noise};
use crate::taps::Taps;

pub struct Attention {
    qkv: Linear,
    kv_global: Linear,
    proj: Linear,
    /// `[(2 ws - 1)^2, heads]`, indexed by `relative_index`.
    bias_table: Tensor,
    /// Swin's pair index into `bias_table` for every (query, key) pair of a window,
    /// `[ws^4]`; the official buffer `relative_position_index`, recomputed here.
    relative_index: Tensor,
    heads: usize,
    tokens: usize,
    window: usize,
    scale: f64,
    attn_drop: Dropout,
    proj_drop: Dropout,
}

/// For tokens i, j of a `ws x ws` window (row-major), `(yi - yj + ws - 1) * (2 ws - 1) +
/// (xi - xj + ws - 1)`.
fn relative_position_index(ws: usize) -> Vec<u32> {
    let a = ws * ws;
    let mut index = Vec::with_capacity(a * a);
    for i in 0..a {
        for j in 0..a {
            let dy = (i / ws + ws - 1 - j / ws) as u32;
            let dx = (i % ws + ws - 1 - j % ws) as u32;
            index.push(dy * (2 * ws as u32 - 1) + dx);
        }
    }
    index
}

pub struct AttentionConfig {
    pub dim: usize,
    pub heads: usize,
    pub tokens: usize,
    pub window: usize,
    pub qkv_bias: bool,
    pub attn_drop: f64,
    pub proj_drop: f64,
}

impl Attention {
    pub fn new(cfg: &AttentionConfig, noise: &Noise, vb: VarBuilder) -> Result<Self> {
        let (c, ws) = (cfg.dim, cfg.window);
        let table = vb.get_with_hints(
            ((2 * ws - 1) * (2 * ws - 1), cfg.heads),
            "relative_position_bias_table",
            Init::Randn {
                mean: 0.0,
                stdev: 0.02,
            },
        )?;
        Ok(Self {
            qkv: linear_normal(vb.pp("qkv"), c, 3 * c, cfg.qkv_bias, 0.02)?,
            kv_global: linear_normal(vb.pp("kv_global"), c, 2 * c, cfg.qkv_bias, 0.02)?,
            proj: linear_normal(vb.pp("proj"), c, c, true, 0.02)?,
            bias_table: table,
            relative_index: Tensor::new(relative_position_index(ws), vb.device())?,
            heads: cfg.heads,
            tokens: cfg.tokens,
            window: ws,
            scale: ((c / cfg.heads) as f64).powf(-0.5),
            attn_drop: Dropout::new(cfg.attn_drop, noise),
            proj_drop: Dropout::new(cfg.proj_drop, noise),
        })
    }

    /// `softmax(q k^T [+ bias]) v` over the last two dims, with attention dropout.
    fn attend(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        bias: Option<&Tensor>,
        train: bool,
    ) -> Result<Tensor> {
        let mut logits = q.contiguous()?.matmul(&k.t()?.contiguous()?)?;
        if let Some(b) = bias {
            logits = ember_ops::broadcast_add(&logits, b)?;
        }
        let p = self
            .attn_drop
            .forward_t(&softmax(&logits, D::Minus1)?, train)?;
        p.matmul(&v.contiguous()?)
    }

    /// `[b, heads, n, d]` -> `[b, n, heads * d]` (channel = head * d + j).
    fn merge_heads(x: &Tensor) -> Result<Tensor> {
        let (b, h, n, d) = x.dims4()?;
        x.transpose(1, 2)?.reshape((b, n, h * d))
    }

    /// Window attention of image tokens `[b, heads, h * w, d]` with the relative position
    /// bias; returns `[b, h * w, c]` in grid order.
    fn local(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        (h, w): (usize, usize),
        train: bool,
    ) -> Result<Tensor> {
        let (b, nh, _, d) = q.dims4()?;
        let ws = self.window;
        let (gh, gw) = (h / ws, w / ws);
        let windows = |t: &Tensor| {
            t.reshape(vec![b, nh, gh, ws, gw, ws, d])?
                .permute([0, 2, 4, 1, 3, 5, 6])?
                .reshape((b * gh * gw, nh, ws * ws, d))
        };
        let a = ws * ws;
        let bias = self
            .bias_table
            .index_select(&self.relative_index, 0)?
            .reshape((a, a, nh))?
            .permute((2, 0, 1))?
            .unsqueeze(0)?;
        let y = self.attend(&windows(q)?, &windows(k)?, &windows(v)?, Some(&bias), train)?;
        // [b, gh, gw, nh, ws, ws, d] -> [b, gh, ws, gw, ws, nh, d]
        y.reshape(vec![b, gh, gw, nh, ws, ws, d])?
            .permute([0, 1, 4, 2, 5, 3, 6])?
            .reshape((b, h * w, nh * d))
    }

    /// `x` `[b, tokens + h * w, c]` (normed); `name` prefixes the taps.
    pub fn forward_t(
        &self,
        x: &Tensor,
        grid: (usize, usize),
        train: bool,
        taps: &mut Taps,
        name: &str,
    ) -> Result<Tensor> {
        let (b, n, c) = x.dims3()?;
        let (nh, nt) = (self.heads, self.tokens);
        let d = c / nh;
        let split = |t: Tensor| -> Result<(Tensor, Tensor, Tensor)> {
            let parts = t
                .reshape((b, t.dim(1)?, 3, nh, d))?
                .permute((2, 0, 3, 1, 4))?;
            Ok((parts.get(0)?, parts.get(1)?, parts.get(2)?))
        };
        let (q, k, v) = split(self.qkv.forward(x)?)?;
        let q = (q * self.scale)?;
        let image = |t: &Tensor| t.narrow(2, nt, n - nt);
        let (q_img, k_img, v_img) = (image(&q)?, image(&k)?, image(&v)?);

        let local = self.local(&q_img, &k_img, &v_img, grid, train)?;
        taps.put(|| format!("{name}.local"), &local);
        let aggregated =
            Self::merge_heads(&self.attend(&q.narrow(2, 0, nt)?, &k_img, &v_img, None, train)?)?;
        taps.put(|| format!("{name}.global_agg"), &aggregated);
        let kv = self
            .kv_global
            .forward(&aggregated)?
            .reshape((b, nt, 2, nh, d))?
            .permute((2, 0, 3, 1, 4))?;
        let broadcast =
            Self::merge_heads(&self.attend(&q_img, &kv.get(0)?, &kv.get(1)?, None, train)?)?;
        taps.put(|| format!("{name}.global_bcast"), &broadcast);

        let out = Tensor::cat(&[aggregated, (local + broadcast)?], 1)?;
        self.proj_drop.forward_t(&self.proj.forward(&out)?, train)
    }
}

#[cfg(test)]
mod tests {
    use super::relative_position_index;

    #[test]
    fn relative_index_is_swins() {
        // ws = 2: tokens (0,0) (0,1) (1,0) (1,1); the table is 3x3 with (0,0) offset at 4.
        assert_eq!(
            relative_position_index(2),
            vec![4, 3, 1, 0, 5, 4, 2, 1, 7, 6, 4, 3, 8, 7, 5, 4]
        );
    }
}
