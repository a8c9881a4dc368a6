//! ResNet (He et al., "Deep Residual Learning for Image Recognition", CVPR 2016), as
//! torchvision's `torchvision.models.resnet`: basic and bottleneck blocks (stride on the 3x3
//! conv, "ResNet v1.5"), a 1x1 conv + BN shortcut where the shape changes, and torchvision's
//! state_dict names (`conv1`, `bn1`, `layer1.0.conv1`, `layer1.0.downsample.0`, `fc`), so
//! its checkpoints load unchanged.
//!
//! Beyond torchvision: configurable stage depths and widths, `stem_width`, `in_chans`, and a
//! small-image stem (`stem_type: "small"`: 3x3 stride-1 conv, no max-pool) as used for
//! 28-32 px images (CIFAR ResNets); it keeps the names `conv1` / `bn1`; and `num_classes: 0`
//! for a backbone without `fc` (timm's convention).
//!
//! Initialisation as torchvision: convs Kaiming-normal (fan_out, ReLU), BN weight 1 and
//! bias 0, `fc` PyTorch's Linear default; `zero_init_residual` zeroes each block's last BN
//! weight (torchvision's option, off by default).
//!
//! Every convolution is a re-parameterisable slot ([`RepConv`]): the config's `rep` plan says
//! which ones are Diverse Branch Blocks (DyRep, RepVGG-style training); without one the
//! network and its weights are torchvision's.

use candle_core::{Module, ModuleT, Result, Tensor};
use candle_nn::init::{FanInOut, NonLinearity, NormalOrUniform};
use candle_nn::{Init, VarBuilder};
use ember_ops::{max_pool2d, MaxPool2dParams};
use serde::{Deserialize, Serialize};

use crate::layers::{linear, BatchNorm2d, Linear};
use crate::rep::{self, RepConv, RepPlan, RepSite};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Block {
    Basic,
    Bottleneck,
}

impl Block {
    pub fn expansion(self) -> usize {
        match self {
            Block::Basic => 1,
            Block::Bottleneck => 4,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StemType {
    /// 7x7 stride-2 conv, BN, ReLU, 3x3 stride-2 max-pool (ImageNet).
    Imagenet,
    /// 3x3 stride-1 conv, BN, ReLU, no pooling (small images).
    Small,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub block: Block,
    /// Blocks per stage.
    pub layers: Vec<usize>,
    /// Planes per stage; a bottleneck stage outputs `4 * planes` channels.
    pub channels: Vec<usize>,
    pub stem_width: usize,
    #[serde(default = "default_stem")]
    pub stem_type: StemType,
    pub in_chans: usize,
    pub num_classes: usize,
    /// Bottleneck width per 64 planes (torchvision's `width_per_group`).
    #[serde(default = "default_base_width")]
    pub base_width: usize,
    #[serde(default)]
    pub zero_init_residual: bool,
    /// Slots that are not plain convolutions (re-parameterised training).
    #[serde(default, skip_serializing_if = "RepPlan::is_empty")]
    pub rep: RepPlan,
}

fn default_stem() -> StemType {
    StemType::Imagenet
}

fn default_base_width() -> usize {
    64
}

impl Config {
    fn standard(block: Block, layers: [usize; 4]) -> Self {
        Self {
            block,
            layers: layers.to_vec(),
            channels: vec![64, 128, 256, 512],
            stem_width: 64,
            stem_type: StemType::Imagenet,
            in_chans: 3,
            num_classes: 1000,
            base_width: 64,
            zero_init_residual: false,
            rep: RepPlan::default(),
        }
    }

    pub fn resnet18() -> Self {
        Self::standard(Block::Basic, [2, 2, 2, 2])
    }

    pub fn resnet34() -> Self {
        Self::standard(Block::Basic, [3, 4, 6, 3])
    }

    pub fn resnet50() -> Self {
        Self::standard(Block::Bottleneck, [3, 4, 6, 3])
    }

    /// Checks what serde cannot: matching lengths and non-zero sizes.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.layers.is_empty() || self.layers.len() != self.channels.len() {
            return Err(format!(
                "resnet: `layers` ({}) and `channels` ({}) need one entry per stage",
                self.layers.len(),
                self.channels.len()
            ));
        }
        let sizes = [self.stem_width, self.in_chans, self.base_width];
        if sizes.contains(&0) || self.channels.contains(&0) || self.layers.contains(&0) {
            return Err("resnet: widths, depths and in_chans must be positive".into());
        }
        Ok(())
    }

    /// Channels out of the last stage.
    pub fn feature_dim(&self) -> usize {
        self.channels.last().copied().unwrap_or(0) * self.block.expansion()
    }

    /// Channels out of each stage.
    pub fn stage_channels(&self) -> Vec<usize> {
        self.channels
            .iter()
            .map(|c| c * self.block.expansion())
            .collect()
    }

    /// Each stage's output stride (input pixels per output pixel along a side).
    pub fn stage_strides(&self) -> Vec<usize> {
        let stem = match self.stem_type {
            StemType::Imagenet => 4,
            StemType::Small => 1,
        };
        (0..self.layers.len()).map(|i| stem << i).collect()
    }

    /// Kernel and stride of the stem conv.
    fn stem_conv(&self) -> (usize, usize) {
        match self.stem_type {
            StemType::Imagenet => (7, 2),
            StemType::Small => (3, 1),
        }
    }

    /// Every residual block in forward order: (stage, input channels, planes, stride).
    fn blocks(&self) -> Vec<(usize, usize, usize, usize)> {
        let mut cin = self.stem_width;
        let mut out = Vec::new();
        for (i, (&depth, &planes)) in self.layers.iter().zip(&self.channels).enumerate() {
            for j in 0..depth {
                out.push((i, cin, planes, if i > 0 && j == 0 { 2 } else { 1 }));
                cin = planes * self.block.expansion();
            }
        }
        out
    }

    /// A block's convs as (cin, cout, kernel, stride), and its 1x1 shortcut conv if any.
    fn block_convs(
        &self,
        cin: usize,
        planes: usize,
        stride: usize,
    ) -> (Vec<ConvShape>, Option<ConvShape>) {
        let cout = planes * self.block.expansion();
        let main = match self.block {
            Block::Basic => vec![(cin, planes, 3, stride), (planes, planes, 3, 1)],
            Block::Bottleneck => {
                let width = planes * self.base_width / 64;
                vec![
                    (cin, width, 1, 1),
                    (width, width, 3, stride),
                    (width, cout, 1, 1),
                ]
            }
        };
        let shortcut = (stride != 1 || cin != cout).then_some((cin, cout, 1, stride));
        (main, shortcut)
    }

    /// Multiply-accumulates of one `h x w` image: every conv and the classifier (BN, ReLU,
    /// pooling and the residual adds are not counted, as torchvision's and fvcore's tables).
    pub fn macs(&self, h: usize, w: usize) -> f64 {
        let conv = |(cin, cout, k, s): ConvShape, (h, w): (usize, usize)| {
            let out = ((h + 2 * (k / 2) - k) / s + 1, (w + 2 * (k / 2) - k) / s + 1);
            ((cin * cout * k * k * out.0 * out.1) as f64, out)
        };
        let (k, s) = self.stem_conv();
        let (mut total, mut size) = conv((self.in_chans, self.stem_width, k, s), (h, w));
        if self.stem_type == StemType::Imagenet {
            // The 3x3 stride-2 max-pool with padding 1.
            size = ((size.0 - 1) / 2 + 1, (size.1 - 1) / 2 + 1);
        }
        for (_, cin, planes, stride) in self.blocks() {
            let (main, shortcut) = self.block_convs(cin, planes, stride);
            let input = size;
            for shape in main {
                let (m, out) = conv(shape, size);
                total += m;
                size = out;
            }
            if let Some(shape) = shortcut {
                total += conv(shape, input).0;
            }
        }
        total + (self.feature_dim() * self.num_classes) as f64
    }
}

/// (cin, cout, kernel, stride) of a conv.
type ConvShape = (usize, usize, usize, usize);

const CONV_INIT: Init = Init::Kaiming {
    dist: NormalOrUniform::Normal,
    fan: FanInOut::FanOut,
    non_linearity: NonLinearity::ReLU,
};

#[derive(Debug, Clone)]
struct ConvBn {
    conv: RepConv,
    bn: BatchNorm2d,
    /// The BN's path (deployment folds a merged conv's bias into it).
    bn_path: String,
}

impl ConvBn {
    /// `conv` and `bn` under `vb`, the conv `(cin, cout, k, stride)` with padding k/2.
    fn new(
        vb: &VarBuilder,
        (conv, bn): (&str, &str),
        (cin, cout, k, stride): ConvShape,
        gamma: f64,
        plan: &RepPlan,
    ) -> Result<Self> {
        let shape = rep::ConvShape {
            cin,
            cout,
            k,
            stride,
            padding: k / 2,
            groups: 1,
            bias: false,
        };
        let bn_vb = vb.pp(bn);
        Ok(Self {
            conv: RepConv::new(vb.pp(conv), shape, CONV_INIT, plan)?,
            bn_path: bn_vb.prefix(),
            bn: BatchNorm2d::with_weight_init(bn_vb, cout, gamma)?,
        })
    }

    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        self.bn.forward_t(&self.conv.forward_t(x, train)?, train)
    }

    fn site(&self) -> RepSite {
        RepSite {
            conv: self.conv.clone(),
            next_bn: Some(self.bn_path.clone()),
        }
    }
}

/// One residual block; `units` are (conv, bn) pairs named `conv{i}` / `bn{i}`.
#[derive(Debug, Clone)]
struct ResidualBlock {
    units: Vec<ConvBn>,
    downsample: Option<ConvBn>,
}

impl ResidualBlock {
    fn new(vb: VarBuilder, cfg: &Config, cin: usize, planes: usize, stride: usize) -> Result<Self> {
        let (shapes, shortcut) = cfg.block_convs(cin, planes, stride);
        let last = shapes.len();
        let units = shapes
            .into_iter()
            .enumerate()
            .map(|(i, (ci, co, k, s))| {
                let gamma = if i + 1 == last && cfg.zero_init_residual {
                    0.0
                } else {
                    1.0
                };
                let (conv, bn) = (format!("conv{}", i + 1), format!("bn{}", i + 1));
                ConvBn::new(&vb, (&conv, &bn), (ci, co, k, s), gamma, &cfg.rep)
            })
            .collect::<Result<Vec<_>>>()?;
        let downsample = match shortcut {
            Some(shape) => Some(ConvBn::new(
                &vb.pp("downsample"),
                ("0", "1"),
                shape,
                1.0,
                &cfg.rep,
            )?),
            None => None,
        };
        Ok(Self { units, downsample })
    }

    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let mut h = x.clone();
        for (i, unit) in self.units.iter().enumerate() {
            h = unit.forward_t(&h, train)?;
            if i + 1 < self.units.len() {
                h = h.relu()?;
            }
        }
        let shortcut = match &self.downsample {
            Some(d) => d.forward_t(x, train)?,
            None => x.clone(),
        };
        (h + shortcut)?.relu()
    }
}

/// Intermediate outputs, named as the parity fixtures name them.
pub struct ResNetOutputs {
    /// After the stem (after the max-pool for the ImageNet stem).
    pub stem: Tensor,
    /// The output of each stage (`layer1`, `layer2`, ...).
    pub stages: Vec<Tensor>,
    pub logits: Tensor,
}

#[derive(Debug, Clone)]
pub struct ResNet {
    cfg: Config,
    stem: ConvBn,
    stages: Vec<Vec<ResidualBlock>>,
    /// None with `num_classes: 0` (a backbone, as timm's `num_classes=0`).
    fc: Option<Linear>,
}

impl ResNet {
    pub fn new(cfg: &Config, vb: VarBuilder) -> Result<Self> {
        cfg.validate().map_err(candle_core::Error::Msg)?;
        let (k, s) = cfg.stem_conv();
        let stem = ConvBn::new(
            &vb,
            ("conv1", "bn1"),
            (cfg.in_chans, cfg.stem_width, k, s),
            1.0,
            &cfg.rep,
        )?;
        let mut stages: Vec<Vec<ResidualBlock>> = cfg.layers.iter().map(|_| Vec::new()).collect();
        for (i, cin, planes, stride) in cfg.blocks() {
            let j = stages[i].len();
            let vb = vb.pp(format!("layer{}", i + 1)).pp(j);
            stages[i].push(ResidualBlock::new(vb, cfg, cin, planes, stride)?);
        }
        let fc = match cfg.num_classes {
            0 => None,
            k => Some(linear(vb.pp("fc"), cfg.feature_dim(), k)?),
        };
        Ok(Self {
            cfg: cfg.clone(),
            stem,
            stages,
            fc,
        })
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Every convolution slot in forward order, with the BN after it.
    pub fn rep_sites(&self) -> Vec<RepSite> {
        let mut sites = vec![self.stem.site()];
        for block in self.stages.iter().flatten() {
            sites.extend(block.units.iter().map(ConvBn::site));
            sites.extend(block.downsample.iter().map(ConvBn::site));
        }
        sites
    }

    /// Pooled features before `fc`, `[n, feature_dim]`.
    pub fn forward_features(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        self.feature_map(x, train)?.mean((2, 3))
    }

    /// The last stage's output `[n, feature_dim, h, w]`, before pooling.
    pub fn feature_map(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let mut h = self.forward_stem(x, train)?;
        for stage in &self.stages {
            for block in stage {
                h = block.forward_t(&h, train)?;
            }
        }
        Ok(h)
    }

    fn forward_stem(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let h = self.stem.forward_t(x, train)?.relu()?;
        match self.cfg.stem_type {
            StemType::Imagenet => max_pool2d(&h, MaxPool2dParams::new(3).stride(2).padding(1)),
            StemType::Small => Ok(h),
        }
    }

    /// Every intermediate output, for parity checks and feature distillation.
    pub fn forward_outputs(&self, x: &Tensor, train: bool) -> Result<ResNetOutputs> {
        let stem = self.forward_stem(x, train)?;
        let mut h = stem.clone();
        let mut stages = Vec::new();
        for stage in &self.stages {
            for block in stage {
                h = block.forward_t(&h, train)?;
            }
            stages.push(h.clone());
        }
        let logits = self.head(&h.mean((2, 3))?)?;
        Ok(ResNetOutputs {
            stem,
            stages,
            logits,
        })
    }
}

impl ResNet {
    /// `fc` on pooled features; the features themselves without a classifier.
    fn head(&self, pooled: &Tensor) -> Result<Tensor> {
        match &self.fc {
            Some(fc) => fc.forward(pooled),
            None => Ok(pooled.clone()),
        }
    }
}

impl ModuleT for ResNet {
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        self.head(&self.forward_features(x, train)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};
    use ember_core::SeededVarMap;

    fn tiny(block: Block, stem_type: StemType) -> Config {
        Config {
            block,
            layers: vec![1, 2],
            channels: vec![4, 8],
            stem_width: 4,
            stem_type,
            in_chans: 1,
            num_classes: 3,
            base_width: 64,
            zero_init_residual: false,
            rep: RepPlan::default(),
        }
    }

    #[test]
    fn torchvision_names_and_shapes() {
        let map = SeededVarMap::new(0);
        let cfg = tiny(Block::Bottleneck, StemType::Imagenet);
        let net = ResNet::new(&cfg, map.var_builder(DType::F32, &Device::Cpu)).unwrap();
        let names: std::collections::BTreeSet<String> =
            map.vars().data().lock().unwrap().keys().cloned().collect();
        for name in [
            "conv1.weight",
            "bn1.running_var",
            "layer1.0.conv3.weight",
            "layer1.0.downsample.0.weight",
            "layer2.1.bn2.bias",
            "fc.weight",
            "fc.bias",
        ] {
            assert!(names.contains(name), "{name} missing from {names:?}");
        }
        assert!(!names.contains("layer2.1.downsample.0.weight"));
        let x = Tensor::zeros((2, 1, 28, 28), DType::F32, &Device::Cpu).unwrap();
        let out = net.forward_outputs(&x, false).unwrap();
        assert_eq!(out.stem.dims(), [2, 4, 7, 7]);
        assert_eq!(out.stages[1].dims(), [2, 32, 4, 4]);
        assert_eq!(out.logits.dims(), [2, 3]);
    }

    #[test]
    fn small_stem_keeps_resolution_and_training_updates_running_stats() {
        let map = SeededVarMap::new(0);
        let cfg = tiny(Block::Basic, StemType::Small);
        let net = ResNet::new(&cfg, map.var_builder(DType::F32, &Device::Cpu)).unwrap();
        let x = Tensor::ones((2, 1, 12, 12), DType::F32, &Device::Cpu).unwrap();
        assert_eq!(
            net.forward_outputs(&x, false).unwrap().stem.dims(),
            [2, 4, 12, 12]
        );
        let before = map
            .vars()
            .get(
                (4,),
                "bn1.running_mean",
                Init::Const(0.),
                DType::F32,
                &Device::Cpu,
            )
            .unwrap();
        let before: Vec<f32> = before.to_vec1().unwrap();
        net.forward_t(&x, true).unwrap();
        let after: Vec<f32> = map.vars().data().lock().unwrap()["bn1.running_mean"]
            .to_vec1()
            .unwrap();
        assert_ne!(before, after);
    }

    #[test]
    fn macs_match_torchvision_tables() {
        // ResNet-18 1.814 G, ResNet-50 4.089 G multiply-accumulates at 224 px.
        let g = |c: Config| (c.macs(224, 224) / 1e6).round() / 1e3;
        assert_eq!(g(Config::resnet18()), 1.814);
        assert_eq!(g(Config::resnet50()), 4.089);
    }

    #[test]
    fn rejects_inconsistent_configs() {
        let mut cfg = tiny(Block::Basic, StemType::Small);
        cfg.channels.pop();
        assert!(cfg.validate().is_err());
        let json = serde_json::json!({"block": "basic", "layers": [1], "channels": [4], "stem_width": 4, "in_chans": 1, "num_classes": 2, "typo": 1});
        assert!(serde_json::from_value::<Config>(json).is_err());
    }
}
