//! Semantic segmentation: a ResNet backbone (no classifier) and a light FPN decoder. Each
//! backbone stage from the output stride down gets a 1x1 lateral conv to the decoder width;
//! coarser levels are upsampled (nearest) and added in, as FPN's top-down path; one 3x3
//! conv + BN + ReLU fuses the finest level and a 1x1 conv gives the class logits at the
//! output stride. The model returns those (as the official CIRKD/MasKD models do): losses
//! and metrics upsample them to the labels' size, and distillation compares them as they are.
//!
//! Names: `backbone.*` (torchvision's ResNet names, so a classification checkpoint's
//! backbone loads), `decoder.lateral.{i}`, `decoder.fuse.{conv,bn}`, `decoder.classifier`.
//! Distillation reads the intermediates through [`SegModel::forward_dense`] or the
//! [`Classifier::outputs`](crate::Classifier::outputs) taps (`layer{i}`, `decoder.fused`,
//! then `logits`).

use candle_core::{Module, ModuleT, Result, Tensor};
use candle_nn::init::{FanInOut, NonLinearity, NormalOrUniform};
use candle_nn::{Init, VarBuilder};
use ember_ops::{upsample_nearest2d, Conv2dParams, Resize};
use serde::{Deserialize, Serialize};

use crate::layers::{BatchNorm2d, Conv2d};
use crate::resnet::{self, ResNet};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The backbone; its `in_chans` and `num_classes` are set from this config's.
    pub backbone: resnet::Config,
    /// Channels of the decoder's laterals and fused map.
    pub decoder_channels: usize,
    /// Stride of the logits before the final upsampling: one of the backbone's stage strides.
    pub output_stride: usize,
    pub in_chans: usize,
    pub num_classes: usize,
}

impl Config {
    /// A ResNet-18 (ImageNet stem) with a 64-channel decoder at stride 4.
    pub fn resnet18() -> Self {
        Self::on(resnet::Config::resnet18(), 64)
    }

    /// A ResNet at a quarter of ResNet-18's widths (16-128), 2 blocks per stage, with a
    /// 32-channel decoder: the small student of the MasKD experiments.
    pub fn resnet_quarter() -> Self {
        let mut backbone = resnet::Config::resnet18();
        backbone.channels = vec![16, 32, 64, 128];
        backbone.stem_width = 16;
        Self::on(backbone, 32)
    }

    fn on(backbone: resnet::Config, decoder_channels: usize) -> Self {
        Self {
            backbone,
            decoder_channels,
            output_stride: 4,
            in_chans: 3,
            num_classes: 19,
        }
    }

    /// The backbone as built: this config's input channels, no classifier.
    pub fn backbone_config(&self) -> resnet::Config {
        let mut b = self.backbone.clone();
        b.in_chans = self.in_chans;
        b.num_classes = 0;
        b
    }

    /// The backbone stages the decoder reads (from the output stride on).
    fn first_level(&self) -> std::result::Result<usize, String> {
        let strides = self.backbone.stage_strides();
        strides
            .iter()
            .position(|&s| s == self.output_stride)
            .ok_or_else(|| {
                format!(
                    "seg: output_stride {} is not a stride of the backbone's stages ({strides:?})",
                    self.output_stride
                )
            })
    }

    pub fn validate(&self) -> std::result::Result<(), String> {
        self.backbone_config().validate()?;
        if self.decoder_channels == 0 || self.num_classes == 0 {
            return Err("seg: decoder_channels and num_classes must be positive".into());
        }
        self.first_level().map(|_| ())
    }

    /// Multiply-accumulates of one `h x w` image: the backbone's convs, the decoder's convs
    /// (upsampling, BN and adds not counted).
    pub fn macs(&self, h: usize, w: usize) -> f64 {
        let backbone = self.backbone_config().macs(h, w);
        let first = self.first_level().unwrap_or(0);
        let d = self.decoder_channels as f64;
        let strides = self.backbone.stage_strides();
        let channels = self.backbone.stage_channels();
        let pixels = |s: usize| (h.div_ceil(s) * w.div_ceil(s)) as f64;
        let laterals: f64 = (first..strides.len())
            .map(|i| channels[i] as f64 * d * pixels(strides[i]))
            .sum();
        let fine = pixels(strides[first]);
        backbone + laterals + fine * (9.0 * d * d + d * self.num_classes as f64)
    }
}

/// What a dense forward pass yields.
pub struct DenseOutputs {
    /// Each backbone stage's output.
    pub stages: Vec<Tensor>,
    /// The fused decoder feature at the output stride, `[n, decoder_channels, h/s, w/s]`.
    pub fused: Tensor,
    /// Logits at the output stride, `[n, classes, h/s, w/s]`.
    pub logits: Tensor,
}

const CONV_INIT: Init = Init::Kaiming {
    dist: NormalOrUniform::Normal,
    fan: FanInOut::FanOut,
    non_linearity: NonLinearity::ReLU,
};

#[derive(Debug, Clone)]
pub struct SegModel {
    cfg: Config,
    backbone: ResNet,
    first: usize,
    laterals: Vec<Conv2d>,
    fuse_conv: Conv2d,
    fuse_bn: BatchNorm2d,
    classifier: Conv2d,
}

impl SegModel {
    pub fn new(cfg: &Config, vb: VarBuilder) -> Result<Self> {
        cfg.validate().map_err(candle_core::Error::Msg)?;
        let backbone = ResNet::new(&cfg.backbone_config(), vb.pp("backbone"))?;
        let first = cfg.first_level().map_err(candle_core::Error::Msg)?;
        let d = cfg.decoder_channels;
        let dec = vb.pp("decoder");
        let laterals = cfg.backbone.stage_channels()[first..]
            .iter()
            .enumerate()
            .map(|(i, &c)| {
                Conv2d::new(
                    dec.pp("lateral").pp(i),
                    c,
                    d,
                    1,
                    Default::default(),
                    true,
                    CONV_INIT,
                )
            })
            .collect::<Result<Vec<_>>>()?;
        let same = Conv2dParams::default().padding(1);
        let fuse_conv = Conv2d::new(dec.pp("fuse.conv"), d, d, 3, same, false, CONV_INIT)?;
        let fuse_bn = BatchNorm2d::new(dec.pp("fuse.bn"), d)?;
        let classifier = Conv2d::new(
            dec.pp("classifier"),
            d,
            cfg.num_classes,
            1,
            Default::default(),
            true,
            CONV_INIT,
        )?;
        Ok(Self {
            cfg: cfg.clone(),
            backbone,
            first,
            laterals,
            fuse_conv,
            fuse_bn,
            classifier,
        })
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    pub fn backbone(&self) -> &ResNet {
        &self.backbone
    }

    pub fn forward_dense(&self, x: &Tensor, train: bool) -> Result<DenseOutputs> {
        let stages = self.backbone.forward_outputs(x, train)?.stages;
        // Top-down: the coarsest lateral, upsampled into each finer one.
        let mut merged: Option<Tensor> = None;
        for (lateral, feature) in self.laterals.iter().zip(&stages[self.first..]).rev() {
            let l = lateral.forward(feature)?;
            merged = Some(match merged {
                None => l,
                Some(coarse) => {
                    let (_, _, lh, lw) = l.dims4()?;
                    (l + upsample_nearest2d(&coarse, Resize::Size(lh, lw))?)?
                }
            });
        }
        let merged = merged.expect("validate keeps at least one level");
        let fused = self
            .fuse_bn
            .forward_t(&self.fuse_conv.forward(&merged)?, train)?
            .relu()?;
        let logits = self.classifier.forward(&fused)?;
        Ok(DenseOutputs {
            stages,
            fused,
            logits,
        })
    }
}

impl ModuleT for SegModel {
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        Ok(self.forward_dense(x, train)?.logits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};
    use ember_core::SeededVarMap;

    fn tiny() -> Config {
        let mut cfg = Config::resnet_quarter();
        cfg.backbone.channels = vec![4, 8, 8, 8];
        cfg.backbone.stem_width = 4;
        cfg.decoder_channels = 6;
        cfg.in_chans = 1;
        cfg.num_classes = 5;
        cfg
    }

    #[test]
    fn logits_cover_the_input_and_names_follow_the_layout() {
        let vars = SeededVarMap::new(0);
        let model = SegModel::new(&tiny(), vars.var_builder(DType::F32, &Device::Cpu)).unwrap();
        let x = Tensor::randn(0f32, 1.0, (2, 1, 64, 48), &Device::Cpu).unwrap();
        let out = model.forward_dense(&x, true).unwrap();
        assert_eq!(out.logits.dims(), [2, 5, 16, 12]);
        assert_eq!(out.fused.dims(), [2, 6, 16, 12]);
        let names: Vec<String> = vars.named().into_iter().map(|(n, _)| n).collect();
        for name in [
            "backbone.conv1.weight",
            "backbone.layer4.1.bn2.running_var",
            "decoder.lateral.3.bias",
            "decoder.fuse.conv.weight",
            "decoder.fuse.bn.weight",
            "decoder.classifier.weight",
        ] {
            assert!(names.iter().any(|n| n == name), "{name}");
        }
        assert!(!names.iter().any(|n| n.starts_with("backbone.fc")));
    }

    #[test]
    fn an_output_stride_the_backbone_lacks_is_refused() {
        let mut cfg = tiny();
        cfg.output_stride = 2;
        assert!(cfg.validate().unwrap_err().contains("output_stride 2"));
        cfg.output_stride = 8;
        let vars = SeededVarMap::new(0);
        let model = SegModel::new(&cfg, vars.var_builder(DType::F32, &Device::Cpu)).unwrap();
        let x = Tensor::randn(0f32, 1.0, (1, 1, 64, 64), &Device::Cpu).unwrap();
        assert_eq!(
            model.forward_dense(&x, false).unwrap().logits.dims(),
            [1, 5, 8, 8]
        );
    }
}
