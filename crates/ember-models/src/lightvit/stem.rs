//! `ConvStem`: a 3x3 conv, three depthwise 3x3 convs (each with BN and GELU) and a 3x3
//! projection conv with bias, then tokens and a LayerNorm (eps 1e-5). Sequential indices
//! 0, 3, 6, 9 are the convs and 1, 4, 7, 10 their BNs, as in the official state_dict.

use candle_core::{Module, ModuleT, Result, Tensor};
use candle_nn::{Init, VarBuilder};
use ember_ops::Conv2dParams;

use super::Config;
use crate::layers::{BatchNorm2d, Conv2d, LayerNorm};
use crate::taps::Taps;

pub struct ConvStem {
    convs: Vec<(Conv2d, BatchNorm2d)>,
    proj: Conv2d,
    norm: LayerNorm,
}

/// PyTorch's default conv init: kaiming_uniform(a = sqrt(5)), i.e. U(+-1/sqrt(fan_in)).
fn torch_default(fan_in: usize) -> Init {
    let bound = 1.0 / (fan_in as f64).sqrt();
    Init::Uniform {
        lo: -bound,
        up: bound,
    }
}

impl ConvStem {
    pub fn new(cfg: &Config, vb: VarBuilder) -> Result<Self> {
        let c0 = cfg.embed_dims[0];
        let sd = c0 / 2;
        let strides = cfg.stem_strides();
        let mut convs = Vec::new();
        for (i, stride) in strides[..4].iter().enumerate() {
            let (cin, groups) = if i == 0 { (cfg.in_chans, 1) } else { (sd, sd) };
            let params = Conv2dParams::default()
                .stride(*stride)
                .padding(1)
                .groups(groups);
            let vs = vb.pp("stem");
            let conv = Conv2d::new(
                vs.pp(3 * i),
                cin,
                sd,
                3,
                params,
                false,
                torch_default(cin / groups * 9),
            )?;
            convs.push((conv, BatchNorm2d::new(vs.pp(3 * i + 1), sd)?));
        }
        let params = Conv2dParams::default().stride(strides[4]).padding(1);
        let proj = Conv2d::new(
            vb.pp("proj"),
            sd,
            c0,
            3,
            params,
            true,
            torch_default(sd * 9),
        )?;
        Ok(Self {
            convs,
            proj,
            norm: LayerNorm::new(vb.pp("norm"), c0, 1e-5)?,
        })
    }

    /// Tokens `[b, h * w, c0]` and the grid `(h, w)`.
    pub fn forward_t(
        &self,
        x: &Tensor,
        train: bool,
        taps: &mut Taps,
    ) -> Result<(Tensor, (usize, usize))> {
        let mut x = x.clone();
        for (conv, bn) in &self.convs {
            x = bn
                .forward_t(&conv.forward(&x)?, train)?
                .apply(&ember_ops::gelu)?;
        }
        taps.put(|| "stem_convs".into(), &x);
        let x = self.proj.forward(&x)?;
        let (_, _, h, w) = x.dims4()?;
        let tokens = self.norm.forward(&x.flatten_from(2)?.transpose(1, 2)?)?;
        taps.put(|| "patch_embed".into(), &tokens);
        Ok((tokens, (h, w)))
    }
}
