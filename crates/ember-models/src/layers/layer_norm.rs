use candle_core::{Module, Result, Tensor};
use candle_nn::{Init, VarBuilder};

/// `torch.nn.LayerNorm(c, eps)` over the last dim, through `ember_ops::layer_norm` (candle's
/// own layer norm records no gradient). The eps is explicit: models mix 1e-5 and 1e-6, and a
/// wrong one moves logits by ~1e-5.
#[derive(Debug, Clone)]
pub struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
    eps: f64,
}

impl LayerNorm {
    pub fn new(vb: VarBuilder, c: usize, eps: f64) -> Result<Self> {
        Ok(Self {
            weight: vb.get_with_hints(c, "weight", Init::Const(1.0))?,
            bias: vb.get_with_hints(c, "bias", Init::Const(0.0))?,
            eps,
        })
    }
}

impl Module for LayerNorm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        ember_ops::layer_norm(x, Some(&self.weight), Some(&self.bias), self.eps)
    }
}
