//! Masked image modelling on Swin: GreenMIM (the encoder on visible tokens only, MAE's
//! decoder) and the SimMIM-style dense baseline, behind one [`MaskedModel`] so a tool trains
//! and compares either.

pub mod config;
pub mod decoder;
pub mod greenmim;
pub mod mask;
pub mod pos_embed;
pub mod simmim;
pub mod vit_block;

use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;

pub use config::{Config, Method, Placement};
pub use greenmim::GreenMim;
pub use mask::UnitMask;
pub use simmim::SimMim;

use crate::swin::SwinEncoder;
use crate::taps::Taps;

/// Either method, built from its config.
pub enum MaskedModel {
    Green(GreenMim),
    Sim(SimMim),
}

impl MaskedModel {
    pub fn new(cfg: &Config, vb: VarBuilder) -> Result<Self> {
        cfg.validate().map_err(candle_core::Error::msg)?;
        Ok(match cfg.method {
            Method::GreenMim => Self::Green(GreenMim::new(cfg, vb)?),
            Method::SimMim => Self::Sim(SimMim::new(cfg, vb)?),
        })
    }

    pub fn encoder(&self) -> &SwinEncoder {
        match self {
            Self::Green(m) => m.encoder(),
            Self::Sim(m) => m.encoder(),
        }
    }

    /// Pixel predictions `[b, units, unit_values]` for images `[b, c, h, w]` under `mask`.
    pub fn forward_taps(
        &self,
        images: &Tensor,
        mask: &UnitMask,
        train: bool,
        taps: &mut Taps,
    ) -> Result<Tensor> {
        match self {
            Self::Green(m) => m.forward_taps(images, mask, train, taps),
            Self::Sim(m) => m.forward_taps(images, mask, train, taps),
        }
    }

    pub fn forward_t(&self, images: &Tensor, mask: &UnitMask, train: bool) -> Result<Tensor> {
        self.forward_taps(images, mask, train, &mut Taps::off())
    }
}
