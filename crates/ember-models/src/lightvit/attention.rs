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

    /// `softmax(scale q k^T [+ bias]) v` over the last two dims, with attention dropout.
    fn attend(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        bias: Option<&Tensor>,
        train: bool,
    ) -> Result<Tensor> {
        // Scaling the logits rather than q (as the official code does) is the same maths on
        // the smaller tensor.
        let mut logits = (q.matmul(&k.t()?)? * self.scale)?;
        if let Some(b) = bias {
            logits = ember_ops::broadcast_add(&logits, b)?;
        }
        let p = self
            .attn_drop
            .forward_t(&softmax(&logits, D::Minus1)?, train)?;
        p.matmul(v)
    }

    /// `[heads, b, n, d]` -> `[b, n, heads * d]` (channel = head * d + j).
    fn merge_heads(x: &Tensor) -> Result<Tensor> {
        let (h, b, n, d) = x.dims4()?;
        x.permute((1, 2, 0, 3))?.reshape((b, n, h * d))
    }

    /// `x` `[b, tokens + h * w, c]` (normed); `name` prefixes the taps.
    ///
    /// `qkv` runs as three projections of the image tokens (q, k, v) and one of the global
    /// tokens (their q; the official code also computes their k and v and drops them): the
    /// same weights, without slicing a `[b, n, 3c]` output, whose backward would pad every
    /// slice back to full size. Image tokens are handled in window order (window by window,
    /// each window row-major) from there on: the global aggregation and broadcast do not
    /// depend on the order of the image tokens, so only the sum of the local and broadcast
    /// outputs goes back to grid order. Heads lead every layout (`[heads, b, ...]`) so that
    /// the position bias broadcasts over one run of dims.
    pub fn forward_t(
        &self,
        x: &Tensor,
        (h, w): (usize, usize),
        train: bool,
        taps: &mut Taps,
        name: &str,
    ) -> Result<Tensor> {
        let (b, n, c) = x.dims3()?;
        let (nh, nt, ws) = (self.heads, self.tokens, self.window);
        let (d, a, gh, gw) = (c / nh, ws * ws, h / ws, w / ws);
        let image_tokens = x.narrow(1, nt, n - nt)?;
        // [b, gh, ws, gw, ws, nh, d] -> [nh, b * gh * gw, ws * ws, d]
        let windowed = |part: usize| {
            self.qkv
                .outputs(part * c, c)?
                .forward(&image_tokens)?
                .reshape(vec![b, gh, ws, gw, ws, nh, d])?
                .permute([5, 0, 1, 3, 2, 4, 6])?
                .reshape((nh, b * gh * gw, a, d))
        };
        let (q, k, v) = (windowed(0)?, windowed(1)?, windowed(2)?);
        let image = |t: &Tensor| t.reshape((nh, b, h * w, d));
        // [nh, b, nt, d]
        let q_global = self
            .qkv
            .outputs(0, c)?
            .forward(&x.narrow(1, 0, nt)?)?
            .reshape((b, nt, nh, d))?
            .permute((2, 0, 1, 3))?
            .contiguous()?;

        let local = image(&self.attend(&q, &k, &v, Some(&self.position_bias()?), train)?)?;
        let aggregated = self.attend(&q_global, &image(&k)?, &image(&v)?, None, train)?;
        let aggregated = Self::merge_heads(&aggregated)?;
        taps.put(|| format!("{name}.global_agg"), &aggregated);
        // [b, nt, 2, nh, d] -> [2, nh, b, nt, d]
        let kv = self
            .kv_global
            .forward(&aggregated)?
            .reshape((b, nt, 2, nh, d))?
            .permute((2, 3, 0, 1, 4))?
            .contiguous()?;
        let broadcast = self.attend(&image(&q)?, &kv.get(0)?, &kv.get(1)?, None, train)?;
        if taps.is_on() {
            taps.put(|| format!("{name}.local"), &self.to_grid(&local, (h, w))?);
            taps.put(
                || format!("{name}.global_bcast"),
                &self.to_grid(&broadcast, (h, w))?,
            );
        }
        let image_out = self.to_grid(&(local + broadcast)?, (h, w))?;
        let out = Tensor::cat(&[aggregated, image_out], 1)?;
        self.proj_drop.forward_t(&self.proj.forward(&out)?, train)
    }

    /// The relative position bias `[heads, 1, a, a]` of a window's `a = ws^2` tokens.
    fn position_bias(&self) -> Result<Tensor> {
        let a = self.window * self.window;
        self.bias_table
            .index_select(&self.relative_index, 0)?
            .reshape((a, a, self.heads))?
            .permute((2, 0, 1))?
            .unsqueeze(1)
    }

    /// Window-ordered image tokens `[nh, b, h * w, d]` -> grid order `[b, h * w, nh * d]`.
    fn to_grid(&self, x: &Tensor, (h, w): (usize, usize)) -> Result<Tensor> {
        let (nh, b, _, d) = x.dims4()?;
        let ws = self.window;
        // [nh, b, gh, gw, ws, ws, d] -> [b, gh, ws, gw, ws, nh, d]
        x.reshape(vec![nh, b, h / ws, w / ws, ws, ws, d])?
            .permute([1, 2, 4, 3, 5, 0, 6])?
            .reshape((b, h * w, nh * d))
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
