//! The SimMIM-style dense baseline: every patch token goes through the Swin encoder, masked
//! ones replaced by a learnt mask token (`mask_token`; SimMIM keeps it under `encoder.`, it
//! lives outside here so the exported encoder is a plain Swin), and a Linear from each
//! last-stage token (one per mask unit) to its pixels (`decoder_pred`, SimMIM's one-layer
//! decoder). Same encoder, mask and loss as GreenMIM, so the two compare on equal terms.

use candle_core::{Module, Result, Tensor};
use candle_nn::{Init, VarBuilder};

use super::config::Config;
use super::mask::UnitMask;
use crate::layers::Linear;
use crate::swin::{Plan, SwinEncoder, WeightInit};
use crate::taps::Taps;

pub struct SimMim {
    encoder: SwinEncoder,
    mask_token: Tensor,
    pred: Linear,
    plan: Plan,
    cfg: Config,
}

impl SimMim {
    pub fn new(cfg: &Config, vb: VarBuilder) -> Result<Self> {
        let encoder = SwinEncoder::new(&cfg.encoder, WeightInit::Xavier, vb.pp("encoder"))?;
        let plan = Plan::new(encoder.geometry(), None, vb.dtype(), vb.device())
            .map_err(candle_core::Error::msg)?;
        Ok(Self {
            mask_token: vb.get_with_hints(
                (1, 1, cfg.encoder.embed_dim),
                "mask_token",
                Init::Randn {
                    mean: 0.0,
                    stdev: 0.02,
                },
            )?,
            pred: WeightInit::Xavier.linear(
                vb.pp("decoder_pred"),
                cfg.encoder.out_dim(),
                cfg.unit_values(),
                true,
            )?,
            encoder,
            plan,
            cfg: cfg.clone(),
        })
    }

    pub fn encoder(&self) -> &SwinEncoder {
        &self.encoder
    }

    /// `[tokens, 1]`: 1 on the patch tokens of masked units.
    fn token_mask(&self, mask: &UnitMask, like: &Tensor) -> Result<Tensor> {
        let per_unit = self.cfg.encoder.mask_unit() / self.cfg.encoder.patch_size;
        let side = mask.side * per_unit;
        let masked = mask.masked();
        let w: Vec<f32> = (0..side * side)
            .map(|t| masked[(t / side / per_unit) * mask.side + (t % side) / per_unit])
            .collect();
        Tensor::from_vec(w, (side * side, 1), like.device())?.to_dtype(like.dtype())
    }

    /// Pixel predictions `[b, units, unit_values]` (the last stage has one token per unit).
    pub fn forward_taps(
        &self,
        images: &Tensor,
        mask: &UnitMask,
        train: bool,
        taps: &mut Taps,
    ) -> Result<Tensor> {
        let embedded = self.encoder.embed(images)?;
        taps.put(|| "patch_embed".into(), &embedded);
        // x (1 - w) + mask_token w, with w 1 on masked tokens: the constant keep factor and
        // the mask-token plane `[tokens, c]` broadcast over the batch.
        let w = self.token_mask(mask, images)?;
        let (n, c) = (w.dim(0)?, self.cfg.encoder.embed_dim);
        let keep = (1.0 - w.broadcast_as((n, c))?.contiguous()?)?;
        let fill = w.matmul(&self.mask_token.reshape((1, c))?)?;
        let filled = ember_ops::broadcast_add(&ember_ops::broadcast_mul(&embedded, &keep)?, &fill)?;
        let latent = self
            .encoder
            .forward_plan(&filled, &self.plan, train, taps)?;
        self.pred.forward(&latent)
    }
}
