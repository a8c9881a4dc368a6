//! The pre-norm transformer `Block` (LayerNorms with eps 1e-6) and its FFN, `BiAttnMlp`:
//! fc1, GELU, fc2, then `BiAttn`, which gates the fc2 output by a channel attention (from the
//! token mean) and a spatial attention (per token, from [local, global] features).

use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;
use ember_ops::{broadcast_add, broadcast_mul};

use super::attention::{Attention, AttentionConfig};
use crate::layers::{linear_normal, Dropout, LayerNorm, Linear, Noise};
use crate::taps::Taps;

/// The bi-dimensional attention. `r = floor(c / 4)`; its LayerNorm has PyTorch's eps 1e-5.
struct BiAttn {
    norm: LayerNorm,
    global_reduce: Linear,
    local_reduce: Linear,
    channel_select: Linear,
    spatial_select: Linear,
}

impl BiAttn {
    fn new(c: usize, vb: VarBuilder) -> Result<Self> {
        let r = c / 4;
        let lin = |name: &str, cin, cout| linear_normal(vb.pp(name), cin, cout, true, 0.02);
        Ok(Self {
            norm: LayerNorm::new(vb.pp("norm"), c, 1e-5)?,
            global_reduce: lin("global_reduce", c, r)?,
            local_reduce: lin("local_reduce", c, r)?,
            channel_select: lin("channel_select", r, c)?,
            spatial_select: lin("spatial_select", 2 * r, 1)?,
        })
    }

    fn forward(&self, x: &Tensor, taps: &mut Taps, name: &str) -> Result<Tensor> {
        let z = self.norm.forward(x)?;
        let n = z.dim(1)?;
        // The mean runs over every token, the global ones included.
        let mean = (ember_ops::sum_keepdim(&z, 1)? / n as f64)?;
        let global = self.global_reduce.forward(&mean)?.apply(&ember_ops::gelu)?;
        let local = self.local_reduce.forward(&z)?.apply(&ember_ops::gelu)?;
        let c_attn = candle_nn::ops::sigmoid(&self.channel_select.forward(&global)?)?;
        let s_attn = candle_nn::ops::sigmoid(&self.spatial_logits(&local, &global)?)?;
        taps.put(|| format!("{name}.c_attn"), &c_attn);
        taps.put(|| format!("{name}.s_attn"), &s_attn);
        broadcast_mul(&broadcast_mul(x, &c_attn)?, &s_attn)
    }

    /// `spatial_select(cat[local, global broadcast over the tokens])`, computed as
    /// `local . w_local + global . w_global + b` without building the concatenation.
    fn spatial_logits(&self, local: &Tensor, global: &Tensor) -> Result<Tensor> {
        let (b, n, r) = local.dims3()?;
        let w = self.spatial_select.weight();
        let per_token = local
            .reshape((b * n, r))?
            .matmul(&w.narrow(1, 0, r)?.t()?)?
            .reshape((b, n, 1))?;
        let per_image = global
            .reshape((b, r))?
            .matmul(&w.narrow(1, r, r)?.t()?)?
            .reshape((b, 1, 1))?;
        let logits = broadcast_add(&per_token, &per_image)?;
        match self.spatial_select.bias() {
            Some(bias) => broadcast_add(&logits, bias),
            None => Ok(logits),
        }
    }
}

struct BiAttnMlp {
    fc1: Linear,
    fc2: Linear,
    attn: BiAttn,
    drop: Dropout,
}

impl BiAttnMlp {
    fn forward_t(&self, x: &Tensor, train: bool, taps: &mut Taps, name: &str) -> Result<Tensor> {
        let h = self
            .drop
            .forward_t(&self.fc1.forward(x)?.apply(&ember_ops::gelu)?, train)?;
        let h = self.attn.forward(&self.fc2.forward(&h)?, taps, name)?;
        self.drop.forward_t(&h, train)
    }
}

pub struct BlockConfig {
    pub attention: AttentionConfig,
    pub mlp_ratio: f64,
    pub drop: f64,
    pub drop_path: f64,
}

pub struct Block {
    norm1: LayerNorm,
    attn: Attention,
    norm2: LayerNorm,
    mlp: BiAttnMlp,
    drop_path: Dropout,
}

impl Block {
    pub fn new(cfg: &BlockConfig, noise: &Noise, vb: VarBuilder) -> Result<Self> {
        let c = cfg.attention.dim;
        let hidden = (c as f64 * cfg.mlp_ratio) as usize;
        let vm = vb.pp("mlp");
        Ok(Self {
            norm1: LayerNorm::new(vb.pp("norm1"), c, 1e-6)?,
            attn: Attention::new(&cfg.attention, noise, vb.pp("attn"))?,
            norm2: LayerNorm::new(vb.pp("norm2"), c, 1e-6)?,
            mlp: BiAttnMlp {
                fc1: linear_normal(vm.pp("fc1"), c, hidden, true, 0.02)?,
                fc2: linear_normal(vm.pp("fc2"), hidden, c, true, 0.02)?,
                attn: BiAttn::new(c, vm.pp("attn"))?,
                drop: Dropout::new(cfg.drop, noise),
            },
            drop_path: Dropout::path(cfg.drop_path, noise),
        })
    }

    pub fn forward_t(
        &self,
        x: &Tensor,
        grid: (usize, usize),
        train: bool,
        taps: &mut Taps,
        name: &str,
    ) -> Result<Tensor> {
        let normed = self.norm1.forward(x)?;
        taps.put(|| format!("{name}.attn_in"), &normed);
        let a = self
            .attn
            .forward_t(&normed, grid, train, taps, &format!("{name}.attn"))?;
        taps.put(|| format!("{name}.attn"), &a);
        let x = (x + self.drop_path.forward_t(&a, train)?)?;
        let m = self.mlp.forward_t(
            &self.norm2.forward(&x)?,
            train,
            taps,
            &format!("{name}.mlp"),
        )?;
        taps.put(|| format!("{name}.mlp"), &m);
        let x = (x + self.drop_path.forward_t(&m, train)?)?;
        taps.put(|| format!("{name}.out"), &x);
        Ok(x)
    }
}
