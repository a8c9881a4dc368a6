//! The macro networks of Channel-Bench-Macro (BCNetV2, arXiv 2203.13714; the benchmark's
//! `model.py`), with seven width variables each and the official parameter names:
//!
//! - `mobilenet`: `stem` (3x3 conv stride 2, BN, ReLU), four inverted-residual blocks
//!   `features.{0..3}.conv` (1x1 expand, BN, ReLU, 3x3 depthwise, BN, ReLU, 1x1 project, BN;
//!   identity shortcut when input and output widths match and the stride is 1: blocks 1, 2
//!   and 4, with no ReLU after the sum), `out` (1x1 conv, BN, ReLU), global pooling,
//!   `classifier`. Widths: stem/residual 1, hidden 1-3, block-3 output (residual of block
//!   4), hidden 4, final conv.
//! - `resnet`: `stem`, five basic blocks `block{1..5}` (3x3 conv, BN, ReLU, 3x3 conv, BN;
//!   `relu(x + block(x))`, but block 3, strided, is `relu(block(x))` with no shortcut),
//!   global pooling, `classifier`. Widths: stem/residual 1, middles of blocks 1-3, block-3
//!   output (residual of blocks 4-5), middles of blocks 4-5.
//!
//! The network stores its `widths`; [`MacroNet::forward_sliced`] runs any slice of each
//! (the width-search supernet), and the plain forward runs them whole.

use candle_core::{Result, Tensor};
use candle_nn::{Init, VarBuilder};
use serde::{Deserialize, Serialize};

use crate::cost::{Cost, Counter};
use crate::layers::sliced::{Slice, SlicedBatchNorm2d, SlicedConv2d, SlicedLinear};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    MobileNet,
    ResNet,
}

/// Width variables of either layout.
pub const WIDTHS: usize = 7;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub layout: Layout,
    /// Channels of the seven width variables.
    pub widths: Vec<usize>,
    pub in_chans: usize,
    pub num_classes: usize,
}

/// One block: (input, inner, output) width variables, stride, identity shortcut.
type Block = (usize, usize, usize, usize, bool);

impl Config {
    /// The benchmark's network at its maximum widths (CIFAR-10).
    pub fn benchmark(layout: Layout) -> Self {
        let widths = match layout {
            Layout::MobileNet => vec![128, 768, 768, 768, 256, 1536, 1024],
            Layout::ResNet => vec![256, 256, 256, 512, 512, 512, 512],
        };
        Self {
            layout,
            widths,
            in_chans: 3,
            num_classes: 10,
        }
    }

    /// The benchmark's layout with every maximum divided by `divisor` (rounded up): the
    /// Fashion-MNIST search space of the spec (MobileNet / 8, about 3 MMACs at 28 px).
    pub fn scaled(layout: Layout, divisor: usize) -> Self {
        let mut cfg = Self::benchmark(layout);
        cfg.widths = cfg.widths.iter().map(|w| w.div_ceil(divisor)).collect();
        cfg
    }

    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.widths.len() != WIDTHS || self.widths.contains(&0) {
            return Err(format!(
                "cbm: widths must be {WIDTHS} positive channel counts, got {:?}",
                self.widths
            ));
        }
        if self.in_chans == 0 || self.num_classes == 0 {
            return Err("cbm: in_chans and num_classes must be positive".into());
        }
        Ok(())
    }

    /// The blocks as width-variable indices (the stem is variable 0).
    pub fn blocks(&self) -> &'static [Block] {
        match self.layout {
            Layout::MobileNet => &[
                (0, 1, 0, 1, true),
                (0, 2, 0, 1, true),
                (0, 3, 4, 2, false),
                (4, 5, 4, 1, true),
            ],
            Layout::ResNet => &[
                (0, 1, 0, 1, true),
                (0, 2, 0, 1, true),
                (0, 3, 4, 2, false),
                (4, 5, 4, 1, true),
                (4, 6, 4, 1, true),
            ],
        }
    }

    /// The width variable the classifier reads.
    pub fn head_width(&self) -> usize {
        match self.layout {
            Layout::MobileNet => 6,
            Layout::ResNet => 4,
        }
    }

    /// MACs and parameters on `side x side` inputs with channels `w` per width variable (the
    /// stored widths for the network itself).
    pub fn cost_with(&self, w: &[usize], side: usize) -> Cost {
        let mut n = Counter::new(side);
        n.conv(self.in_chans, w[0], 3, 2, 1);
        n.bn(w[0]);
        for &(i, m, o, stride, _) in self.blocks() {
            match self.layout {
                Layout::MobileNet => {
                    n.conv(w[i], w[m], 1, 1, 1);
                    n.bn(w[m]);
                    n.conv(w[m], w[m], 3, stride, w[m]);
                    n.bn(w[m]);
                    n.conv(w[m], w[o], 1, 1, 1);
                }
                Layout::ResNet => {
                    n.conv(w[i], w[m], 3, stride, 1);
                    n.bn(w[m]);
                    n.conv(w[m], w[o], 3, 1, 1);
                }
            }
            n.bn(w[o]);
        }
        if self.layout == Layout::MobileNet {
            n.conv(w[4], w[6], 1, 1, 1);
            n.bn(w[6]);
        }
        n.linear(w[self.head_width()], self.num_classes);
        n.total()
    }

    pub fn cost(&self, side: usize) -> Cost {
        self.cost_with(&self.widths, side)
    }
}

/// PyTorch's default conv and linear init (`kaiming_uniform_(a=sqrt(5))`): U(+-1/sqrt(fan_in)).
fn default_init(fan_in: usize) -> Init {
    let bound = 1.0 / (fan_in as f64).sqrt();
    Init::Uniform {
        lo: -bound,
        up: bound,
    }
}

/// One block's layers: the two or three convs and their BNs.
#[derive(Debug, Clone)]
struct BlockLayers {
    convs: Vec<SlicedConv2d>,
    norms: Vec<SlicedBatchNorm2d>,
    spec: Block,
}

#[derive(Debug, Clone)]
pub struct MacroNet {
    cfg: Config,
    stem: (SlicedConv2d, SlicedBatchNorm2d),
    blocks: Vec<BlockLayers>,
    /// MobileNet's final 1x1 conv and BN.
    out: Option<(SlicedConv2d, SlicedBatchNorm2d)>,
    classifier: SlicedLinear,
}

/// Running-statistics momentum of a training-mode forward (PyTorch's default).
pub const BN_MOMENTUM: f64 = 0.1;

impl MacroNet {
    pub fn new(cfg: &Config, vb: VarBuilder) -> Result<Self> {
        cfg.validate().map_err(candle_core::Error::Msg)?;
        let w = &cfg.widths;
        let conv = |vb: VarBuilder, i: usize, o: usize, k: usize, s: usize| {
            SlicedConv2d::new(vb, i, o, k, s, default_init(i * k * k))
        };
        let stem = (
            conv(vb.pp("stem.0"), cfg.in_chans, w[0], 3, 2)?,
            SlicedBatchNorm2d::new(vb.pp("stem.1"), w[0])?,
        );
        let mut blocks = Vec::new();
        for (b, &spec) in cfg.blocks().iter().enumerate() {
            let (i, m, o, stride, _) = spec;
            let (convs, norms) = match cfg.layout {
                Layout::MobileNet => {
                    let vb = vb.pp(format!("features.{b}.conv"));
                    (
                        vec![
                            conv(vb.pp("0"), w[i], w[m], 1, 1)?,
                            SlicedConv2d::depthwise(vb.pp("3"), w[m], 3, stride, default_init(9))?,
                            conv(vb.pp("6"), w[m], w[o], 1, 1)?,
                        ],
                        vec![
                            SlicedBatchNorm2d::new(vb.pp("1"), w[m])?,
                            SlicedBatchNorm2d::new(vb.pp("4"), w[m])?,
                            SlicedBatchNorm2d::new(vb.pp("7"), w[o])?,
                        ],
                    )
                }
                Layout::ResNet => {
                    let vb = vb.pp(format!("block{}", b + 1));
                    (
                        vec![
                            conv(vb.pp("0"), w[i], w[m], 3, stride)?,
                            conv(vb.pp("3"), w[m], w[o], 3, 1)?,
                        ],
                        vec![
                            SlicedBatchNorm2d::new(vb.pp("1"), w[m])?,
                            SlicedBatchNorm2d::new(vb.pp("4"), w[o])?,
                        ],
                    )
                }
            };
            blocks.push(BlockLayers { convs, norms, spec });
        }
        let out = match cfg.layout {
            Layout::MobileNet => Some((
                conv(vb.pp("out.0"), w[4], w[6], 1, 1)?,
                SlicedBatchNorm2d::new(vb.pp("out.1"), w[6])?,
            )),
            Layout::ResNet => None,
        };
        let head = w[cfg.head_width()];
        let classifier = SlicedLinear::new(vb.pp("classifier"), head, cfg.num_classes)?;
        Ok(Self {
            cfg: cfg.clone(),
            stem,
            blocks,
            out,
            classifier,
        })
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Every stored channel.
    pub fn full(&self) -> Vec<Slice> {
        self.cfg.widths.iter().map(|&w| Slice::left(w)).collect()
    }

    /// Every BN layer (for re-calibration).
    pub fn norms(&self) -> Vec<&SlicedBatchNorm2d> {
        let mut all = vec![&self.stem.1];
        all.extend(self.blocks.iter().flat_map(|b| b.norms.iter()));
        all.extend(self.out.iter().map(|o| &o.1));
        all
    }

    /// The last feature map `[n, c, h, w]` with channels `slices` per width variable;
    /// `momentum` moves the BN running statistics in training mode.
    pub fn feature_map_sliced(
        &self,
        x: &Tensor,
        s: &[Slice],
        train: bool,
        momentum: Option<f64>,
    ) -> Result<Tensor> {
        if s.len() != WIDTHS {
            candle_core::bail!("cbm: {} slices for {WIDTHS} widths", s.len())
        }
        let input = Slice::left(self.cfg.in_chans);
        let bn = |n: &SlicedBatchNorm2d, x: &Tensor, sl: Slice| n.forward(x, sl, train, momentum);
        let mut x = bn(&self.stem.1, &self.stem.0.forward(x, input, s[0])?, s[0])?.relu()?;
        for block in &self.blocks {
            let (i, m, o, _, shortcut) = block.spec;
            let (c, n) = (&block.convs, &block.norms);
            let mut y = bn(&n[0], &c[0].forward(&x, s[i], s[m])?, s[m])?.relu()?;
            y = match self.cfg.layout {
                Layout::MobileNet => {
                    let y = bn(&n[1], &c[1].forward(&y, s[m], s[m])?, s[m])?.relu()?;
                    bn(&n[2], &c[2].forward(&y, s[m], s[o])?, s[o])?
                }
                Layout::ResNet => bn(&n[1], &c[1].forward(&y, s[m], s[o])?, s[o])?,
            };
            x = match (self.cfg.layout, shortcut) {
                (Layout::MobileNet, true) => (x + y)?,
                (Layout::MobileNet, false) => y,
                (Layout::ResNet, true) => (x + y)?.relu()?,
                (Layout::ResNet, false) => y.relu()?,
            };
        }
        if let Some((conv, norm)) = &self.out {
            x = bn(norm, &conv.forward(&x, s[4], s[6])?, s[6])?.relu()?;
        }
        Ok(x)
    }

    /// Class logits of the sub-network with channels `slices` per width variable.
    pub fn forward_sliced(
        &self,
        x: &Tensor,
        s: &[Slice],
        train: bool,
        momentum: Option<f64>,
    ) -> Result<Tensor> {
        let pooled = self
            .feature_map_sliced(x, s, train, momentum)?
            .mean((2, 3))?;
        self.classifier.forward(&pooled, s[self.cfg.head_width()])
    }
}

impl crate::Classifier for MacroNet {
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        self.forward_sliced(x, &self.full(), train, Some(BN_MOMENTUM))
    }

    fn features(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        self.feature_map(x, train)?.mean((2, 3))
    }

    fn feature_map(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        self.feature_map_sliced(x, &self.full(), train, Some(BN_MOMENTUM))
    }

    fn head_prefix(&self) -> &'static str {
        "classifier."
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};
    use candle_nn::VarMap;

    fn net(cfg: &Config) -> (VarMap, MacroNet) {
        let vars = VarMap::new();
        let vb = VarBuilder::from_varmap(&vars, DType::F32, &Device::Cpu);
        let n = MacroNet::new(cfg, vb).unwrap();
        (vars, n)
    }

    fn small(layout: Layout) -> Config {
        Config {
            layout,
            widths: vec![8, 12, 12, 12, 8, 16, 12],
            in_chans: 1,
            num_classes: 5,
        }
    }

    #[test]
    fn parameters_match_the_counter_under_the_official_names() {
        for layout in [Layout::MobileNet, Layout::ResNet] {
            let cfg = small(layout);
            let (vars, _) = net(&cfg);
            let params = crate::registry::parameter_count(&vars);
            assert_eq!(params as u64, cfg.cost(28).params, "{layout:?}");
            let names: Vec<String> = vars.data().lock().unwrap().keys().cloned().collect();
            let expected = match layout {
                Layout::MobileNet => [
                    "stem.0.weight",
                    "features.2.conv.3.weight",
                    "out.1.running_var",
                ],
                Layout::ResNet => ["stem.1.bias", "block3.0.weight", "block5.4.running_mean"],
            };
            for name in expected {
                assert!(names.iter().any(|n| n == name), "{name} in {names:?}");
            }
        }
    }

    #[test]
    fn a_slice_reads_and_trains_only_its_channels() {
        let (vars, net) = net(&small(Layout::MobileNet));
        let x = Tensor::randn(0f32, 1.0, (2, 1, 16, 16), &Device::Cpu).unwrap();
        // The right half of every width variable.
        let right: Vec<Slice> = net
            .config()
            .widths
            .iter()
            .map(|&w| Slice::right(w, w / 2))
            .collect();
        let logits = net.forward_sliced(&x, &right, true, Some(0.5)).unwrap();
        assert_eq!(logits.dims(), [2, 5]);
        let grads = logits.sqr().unwrap().sum_all().unwrap().backward().unwrap();
        let data = vars.data().lock().unwrap();
        let g = grads
            .get(data["features.0.conv.0.weight"].as_tensor())
            .unwrap();
        // [hidden 12, in 8]: rows 0..6 and columns 0..4 (the unused left halves) get nothing.
        let g = g.flatten_from(1).unwrap().to_vec2::<f32>().unwrap();
        assert!(g[..6].iter().flatten().all(|&v| v == 0.0));
        assert!(g[6..].iter().all(|r| r[..4].iter().all(|&v| v == 0.0)));
        assert!(g[6..].iter().flatten().any(|&v| v != 0.0));
        // The BN statistics moved in the right half only.
        let mean = data["stem.1.running_mean"]
            .as_tensor()
            .to_vec1::<f32>()
            .unwrap();
        assert!(mean[..4].iter().all(|&v| v == 0.0) && mean[4..].iter().any(|&v| v != 0.0));
    }
}
