//! GreenMIM's masked autoencoder: the Swin encoder on the visible tokens only (one mask for
//! the batch, so one window grouping per stage), then MAE's decoder over every unit.

use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;

use super::config::{Config, Placement};
use super::decoder::MaeDecoder;
use super::mask::UnitMask;
use crate::swin::{Plan, SwinEncoder, WeightInit};
use crate::taps::Taps;

pub struct GreenMim {
    encoder: SwinEncoder,
    decoder: MaeDecoder,
    cfg: Config,
}

impl GreenMim {
    pub fn new(cfg: &Config, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            encoder: SwinEncoder::new(&cfg.encoder, WeightInit::Xavier, vb.pp("encoder"))?,
            decoder: MaeDecoder::new(cfg, vb.clone())?,
            cfg: cfg.clone(),
        })
    }

    pub fn encoder(&self) -> &SwinEncoder {
        &self.encoder
    }

    pub fn decoder(&self) -> &MaeDecoder {
        &self.decoder
    }

    /// The stage plans for the visible tokens of `mask`.
    pub fn plan(&self, mask: &UnitMask, like: &Tensor) -> Result<Plan> {
        let per_unit = self.cfg.encoder.mask_unit() / self.cfg.encoder.patch_size;
        Plan::new(
            self.encoder.geometry(),
            Some(mask.token_coords(per_unit)),
            like.dtype(),
            like.device(),
        )
        .map_err(candle_core::Error::msg)
    }

    /// Per unit, the row of `[latents; mask token]` the decoder puts there.
    fn sources(&self, mask: &UnitMask) -> Vec<u32> {
        let keep = mask.visible.len();
        match self.cfg.placement {
            Placement::Official => mask
                .ids_restore
                .iter()
                .map(|&r| r.min(keep) as u32)
                .collect(),
            Placement::Raster => {
                let mut sources = vec![keep as u32; mask.units()];
                for (rank, &unit) in mask.visible.iter().enumerate() {
                    sources[unit] = rank as u32;
                }
                sources
            }
        }
    }

    /// Pixel predictions `[b, units, unit_values]` for images `[b, c, h, w]` under `mask`.
    /// Taps: `patch_embed`, the encoder's, the decoder's.
    pub fn forward_taps(
        &self,
        images: &Tensor,
        mask: &UnitMask,
        train: bool,
        taps: &mut Taps,
    ) -> Result<Tensor> {
        let plan = self.plan(mask, images)?;
        let embedded = self.encoder.embed(images)?;
        taps.put(|| "patch_embed".into(), &embedded);
        let latent = self.encoder.forward_plan(&embedded, &plan, train, taps)?;
        let sources = Tensor::new(self.sources(mask), images.device())?;
        self.decoder.forward(&latent, &sources, taps)
    }
}
