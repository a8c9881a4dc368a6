//! The masked-image-modelling config: the Swin encoder, the method, MAE's decoder sizes and
//! the loss and mask settings. `from_official` reads the flat keyword arguments of GreenMIM's
//! model factory (as the parity manifests give them).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::swin;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// The encoder sees the visible tokens only; MAE's decoder fills in the rest.
    GreenMim,
    /// Every token goes through the encoder, masked ones replaced by a learnt mask token;
    /// a linear head predicts each unit's pixels (SimMIM's one-layer decoder).
    SimMim,
}

/// Where the decoder puts the encoder's latents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Placement {
    /// Each visible unit's latent at its own position.
    Raster,
    /// The official code's: MAE's `ids_restore` gather, which assumes the latents come in
    /// keep (noise) order, applied to latents that GreenMIM's encoder returns in raster
    /// order, so visible position `j` receives the latent of the `ids_restore[j]`-th visible
    /// unit, usually another unit's. Kept for parity with the official weights and outputs.
    Official,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default = "greenmim")]
    pub method: Method,
    pub encoder: swin::Config,
    #[serde(default = "d512")]
    pub decoder_embed_dim: usize,
    #[serde(default = "one")]
    pub decoder_depth: usize,
    #[serde(default = "h16")]
    pub decoder_num_heads: usize,
    #[serde(default = "four")]
    pub decoder_mlp_ratio: f64,
    #[serde(default = "yes")]
    pub norm_pix_loss: bool,
    #[serde(default = "three_quarters")]
    pub mask_ratio: f64,
    #[serde(default = "raster")]
    pub placement: Placement,
}

fn greenmim() -> Method {
    Method::GreenMim
}
fn d512() -> usize {
    512
}
fn one() -> usize {
    1
}
fn h16() -> usize {
    16
}
fn four() -> f64 {
    4.0
}
fn yes() -> bool {
    true
}
fn three_quarters() -> f64 {
    0.75
}
fn raster() -> Placement {
    Placement::Raster
}

impl Config {
    /// The side of the mask-unit grid.
    pub fn unit_side(&self) -> usize {
        self.encoder.img_size / self.encoder.mask_unit()
    }

    /// Pixel values a unit's prediction holds: `unit^2 * in_chans`.
    pub fn unit_values(&self) -> usize {
        let u = self.encoder.mask_unit();
        u * u * self.encoder.in_chans
    }

    pub fn validate(&self) -> Result<(), String> {
        self.encoder.validate()?;
        if !(0.0..1.0).contains(&self.mask_ratio) {
            return Err(format!("mask_ratio {} must be in [0, 1)", self.mask_ratio));
        }
        let units = self.unit_side() * self.unit_side();
        let keep = (units as f64 * (1.0 - self.mask_ratio)) as usize;
        if keep == 0 || keep == units {
            return Err(format!(
                "mask_ratio {} keeps {keep} of {units} mask units: at least one must be visible and one masked",
                self.mask_ratio
            ));
        }
        if self.method == Method::GreenMim
            && (self.decoder_num_heads == 0
                || !self
                    .decoder_embed_dim
                    .is_multiple_of(self.decoder_num_heads))
        {
            return Err(format!(
                "decoder_embed_dim {} does not split into {} heads",
                self.decoder_embed_dim, self.decoder_num_heads
            ));
        }
        if !self.decoder_embed_dim.is_multiple_of(4) {
            return Err("decoder_embed_dim must be a multiple of 4 (2-D sin-cos embedding)".into());
        }
        Ok(())
    }

    /// A GreenMIM config from the official factory's keyword arguments (`img_size`,
    /// `patch_size`, ..., `final_patch_size`, `decoder_num_patches`, ...), with the official
    /// decoder placement. Derived sizes that disagree with the encoder, and options Ember does
    /// not implement (absolute position embedding, no patch norm, a qk scale), are errors.
    pub fn from_official(flat: &Value) -> Result<Self, String> {
        let field = |k: &str| flat.get(k).cloned().unwrap_or(Value::Null);
        let mut encoder = serde_json::Map::new();
        for k in [
            "img_size",
            "patch_size",
            "in_chans",
            "embed_dim",
            "depths",
            "num_heads",
            "window_size",
            "mlp_ratio",
            "qkv_bias",
            "norm_eps",
        ] {
            if let Some(v) = flat.get(k) {
                encoder.insert(k.into(), v.clone());
            }
        }
        let encoder: swin::Config =
            serde_json::from_value(Value::Object(encoder)).map_err(|e| e.to_string())?;
        if !field("qk_scale").is_null()
            || field("ape") == Value::Bool(true)
            || field("patch_norm") == Value::Bool(false)
        {
            return Err("qk_scale, ape and patch_norm = false are not supported".into());
        }
        let num = |k: &str, default: usize| field(k).as_u64().map_or(default, |v| v as usize);
        let cfg = Self {
            method: Method::GreenMim,
            decoder_embed_dim: num("decoder_embed_dim", d512()),
            decoder_depth: num("decoder_depth", 1),
            decoder_num_heads: num("decoder_num_heads", 16),
            decoder_mlp_ratio: field("decoder_mlp_ratio").as_f64().unwrap_or(4.0),
            norm_pix_loss: field("norm_pix_loss").as_bool().unwrap_or(true),
            mask_ratio: field("mask_ratio").as_f64().unwrap_or(0.75),
            placement: Placement::Official,
            encoder,
        };
        let units = cfg.unit_side() * cfg.unit_side();
        for (k, want) in [
            ("final_patch_size", cfg.encoder.mask_unit()),
            ("encoder_out_dim", cfg.encoder.out_dim()),
            ("decoder_num_patches", units),
        ] {
            if let Some(v) = field(k).as_u64() {
                if v as usize != want {
                    return Err(format!("{k} = {v}, but the encoder implies {want}"));
                }
            }
        }
        cfg.validate()?;
        Ok(cfg)
    }
}
