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

#[cfg(test)]
mod tests {
    use candle_core::{DType, Device, Tensor};
    use ember_core::{EmberRng, SeededVarMap};

    use super::*;
    use crate::swin;

    fn tiny(method: Method) -> Config {
        Config {
            method,
            encoder: swin::Config {
                img_size: 16,
                patch_size: 2,
                in_chans: 1,
                num_classes: 0,
                embed_dim: 8,
                depths: vec![2, 2],
                num_heads: vec![2, 2],
                window_size: 2,
                mlp_ratio: 2.0,
                qkv_bias: true,
                norm_eps: 1e-6,
                drop_path_rate: 0.0,
            },
            decoder_embed_dim: 16,
            decoder_depth: 1,
            decoder_num_heads: 2,
            decoder_mlp_ratio: 2.0,
            norm_pix_loss: true,
            // A quarter masked: at 0.75 the last stage's few visible tokens may each be
            // alone in their window, where the position bias rightly gets no gradient.
            mask_ratio: 0.25,
            placement: Placement::Raster,
        }
    }

    #[test]
    fn every_parameter_of_both_methods_gets_a_gradient() {
        for method in [Method::GreenMim, Method::SimMim] {
            let cfg = tiny(method);
            let map = SeededVarMap::new(0);
            let model = MaskedModel::new(&cfg, map.var_builder(DType::F32, &Device::Cpu)).unwrap();
            let mask = UnitMask::random(cfg.unit_side(), cfg.mask_ratio, &mut EmberRng::new(5));
            assert_eq!(mask.visible.len(), 12);
            let x = Tensor::randn(0f32, 1.0, (2, 1, 16, 16), &Device::Cpu).unwrap();
            let pred = model.forward_t(&x, &mask, true).unwrap();
            assert_eq!(pred.dims(), &[2, 16, 16]);
            let grads = pred.sqr().unwrap().sum_all().unwrap().backward().unwrap();
            for (name, var) in map.vars().data().lock().unwrap().iter() {
                let g = grads
                    .get(var.as_tensor())
                    .unwrap_or_else(|| panic!("{method:?}: no gradient for {name}"));
                let norm = g
                    .abs()
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap();
                assert!(norm > 0.0, "{method:?}: zero gradient for {name}");
            }
        }
    }
}
