//! The dense Swin classifier (`--arch swin`): the encoder on every token, mean over tokens,
//! `head`. The plan for the full grid is fixed by the config, so it is built once.

use candle_core::{DType, Module, Result, Tensor};
use candle_nn::VarBuilder;

use super::config::Config;
use super::encoder::{Plan, SwinEncoder};
use super::WeightInit;
use crate::layers::{linear_normal, Linear};
use crate::taps::Taps;

pub struct Swin {
    encoder: SwinEncoder,
    head: Linear,
    plan: Plan,
    cfg: Config,
}

impl Swin {
    pub fn new(cfg: &Config, vb: VarBuilder) -> Result<Self> {
        let encoder = SwinEncoder::new(cfg, WeightInit::Swin, vb.clone())?;
        let plan = Plan::new(encoder.geometry(), None, vb.dtype(), vb.device())
            .map_err(candle_core::Error::msg)?;
        Ok(Self {
            head: linear_normal(vb.pp("head"), cfg.out_dim(), cfg.num_classes, true, 0.02)?,
            encoder,
            plan,
            cfg: cfg.clone(),
        })
    }

    pub fn noise(&self) -> &crate::layers::Noise {
        self.encoder.noise()
    }

    fn tokens(&self, x: &Tensor, train: bool, taps: &mut Taps) -> Result<Tensor> {
        let (_, _, h, w) = x.dims4()?;
        if h != self.cfg.img_size || w != self.cfg.img_size {
            candle_core::bail!(
                "swin: the model takes {0}x{0} images, got {h}x{w}",
                self.cfg.img_size
            )
        }
        let embedded = self.encoder.embed(x)?;
        taps.put(|| "patch_embed".into(), &embedded);
        self.encoder
            .forward_plan(&embedded, &self.plan, train, taps)
    }

    /// The pooled features `[b, c_last]` (mean over the last stage's tokens).
    pub fn features(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        pool(&self.tokens(x, train, &mut Taps::off())?)
    }

    /// The last stage's tokens as a map `[b, c_last, h, w]`.
    pub fn feature_map(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let t = self.tokens(x, train, &mut Taps::off())?;
        let (b, n, c) = t.dims3()?;
        let side = self.encoder.geometry().last().map_or(1, |g| g.resolution);
        debug_assert_eq!(n, side * side);
        t.reshape((b, side, side, c))?
            .permute((0, 3, 1, 2))?
            .contiguous()
    }

    pub fn forward_taps(&self, x: &Tensor, train: bool, taps: &mut Taps) -> Result<Tensor> {
        let pooled = pool(&self.tokens(x, train, taps)?)?;
        self.head.forward(&pooled)
    }

    pub fn dtype(&self) -> DType {
        self.head.weight().dtype()
    }
}

/// The mean over tokens `[b, n, c]` -> `[b, c]` (one contiguous pass each way).
fn pool(tokens: &Tensor) -> Result<Tensor> {
    let n = tokens.dim(1)?;
    (ember_ops::sum_keepdim(tokens, 1)? / n as f64)?.squeeze(1)
}

#[cfg(test)]
mod tests {
    use candle_core::{DType, Device, Tensor};
    use ember_core::SeededVarMap;

    use super::*;

    #[test]
    fn swin_t_has_timms_parameter_count() {
        let vars = SeededVarMap::new(0);
        Swin::new(&Config::tiny(), vars.var_builder(DType::F32, &Device::Cpu)).unwrap();
        // timm's swin_tiny_patch4_window7_224: 28,288,354 parameters.
        assert_eq!(crate::registry::parameter_count(vars.vars()), 28_288_354);
    }

    #[test]
    fn logits_features_and_maps_have_their_shapes() {
        let vars = SeededVarMap::new(0);
        let m = Swin::new(
            &Config::nano_32(),
            vars.var_builder(DType::F32, &Device::Cpu),
        )
        .unwrap();
        let x = Tensor::randn(0f32, 1.0, (2, 1, 32, 32), &Device::Cpu).unwrap();
        assert_eq!(
            m.forward_taps(&x, false, &mut Taps::off()).unwrap().dims(),
            &[2, 10]
        );
        assert_eq!(m.features(&x, false).unwrap().dims(), &[2, 128]);
        assert_eq!(m.feature_map(&x, false).unwrap().dims(), &[2, 128, 4, 4]);
        let wrong = Tensor::zeros((1, 1, 28, 28), DType::F32, &Device::Cpu).unwrap();
        assert!(m.features(&wrong, false).is_err());
    }
}
