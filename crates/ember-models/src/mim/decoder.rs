//! MAE's decoder as GreenMIM uses it: embed the latents, fill the masked units with the mask
//! token, add the fixed sin-cos position embedding, ViT blocks, LayerNorm, and a Linear to
//! each unit's pixels. Official names at the top level (`decoder_embed`, `mask_token`,
//! `decoder_blocks.{i}`, `decoder_norm`, `decoder_pred`); `decoder_pos_embed` is computed,
//! not stored.

use candle_core::{Module, Result, Tensor};
use candle_nn::{Init, VarBuilder};

use super::config::Config;
use super::pos_embed::sincos_2d;
use super::vit_block::VitBlock;
use crate::layers::{LayerNorm, Linear};
use crate::swin::WeightInit;
use crate::taps::Taps;

pub struct MaeDecoder {
    embed: Linear,
    mask_token: Tensor,
    pos_embed: Tensor,
    blocks: Vec<VitBlock>,
    norm: LayerNorm,
    pred: Linear,
}

impl MaeDecoder {
    pub fn new(cfg: &Config, vb: VarBuilder) -> Result<Self> {
        let (d, side) = (cfg.decoder_embed_dim, cfg.unit_side());
        let eps = cfg.encoder.norm_eps;
        let init = WeightInit::Xavier;
        let pos = sincos_2d(d, side);
        Ok(Self {
            embed: init.linear(vb.pp("decoder_embed"), cfg.encoder.out_dim(), d, true)?,
            mask_token: vb.get_with_hints(
                (1, 1, d),
                "mask_token",
                Init::Randn {
                    mean: 0.0,
                    stdev: 0.02,
                },
            )?,
            pos_embed: Tensor::from_vec(pos, (1, side * side, d), vb.device())?
                .to_dtype(vb.dtype())?,
            blocks: (0..cfg.decoder_depth)
                .map(|i| {
                    VitBlock::new(
                        vb.pp("decoder_blocks").pp(i),
                        d,
                        cfg.decoder_num_heads,
                        cfg.decoder_mlp_ratio,
                        eps,
                        init,
                    )
                })
                .collect::<Result<_>>()?,
            norm: LayerNorm::new(vb.pp("decoder_norm"), d, eps)?,
            pred: init.linear(vb.pp("decoder_pred"), d, cfg.unit_values(), true)?,
        })
    }

    /// The fixed position embedding `[1, units, d]`.
    pub fn pos_embed(&self) -> &Tensor {
        &self.pos_embed
    }

    /// `latent` `[b, k, c]` and `sources` `[units]` (per unit, the latent row it takes, or
    /// `k` for the mask token) -> pixel predictions `[b, units, unit_values]`. Taps:
    /// `dec.embed`, `dec.input`, `dec.blockI`.
    pub fn forward(&self, latent: &Tensor, sources: &Tensor, taps: &mut Taps) -> Result<Tensor> {
        let embedded = self.embed.forward(latent)?;
        taps.put(|| "dec.embed".into(), &embedded);
        let (b, _, d) = embedded.dims3()?;
        let token = self.mask_token.broadcast_as((b, 1, d))?;
        let x = Tensor::cat(&[&embedded, &token], 1)?.index_select(sources, 1)?;
        let mut x = ember_ops::broadcast_add(&x, &self.pos_embed)?;
        taps.put(|| "dec.input".into(), &x);
        for (i, block) in self.blocks.iter().enumerate() {
            x = block.forward(&x)?;
            taps.put(|| format!("dec.block{i}"), &x);
        }
        self.pred.forward(&self.norm.forward(&x)?)
    }
}
