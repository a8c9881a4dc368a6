//! ScaleNet's layers over sliced weights (the official `core/search_space/ops.py`): conv-BN-
//! HSwish, the inverted residual with squeeze-excite, and the n-laterally coupled choice of
//! channels. Each module keeps its own call counter and, with two coupled sides, takes the
//! first channels of every weight on even calls and the last ones on odd calls (BCNet's
//! coupling as ScaleNet's `asyn` mode has it: consecutive uses of a module alternate, and
//! one forward pass may mix left and right modules). A stand-alone network uses the same
//! layers with one side and its exact widths stored.

use std::sync::atomic::{AtomicUsize, Ordering};

use candle_core::{Result, Tensor};
use candle_nn::{Init, VarBuilder};
use ember_ops::{broadcast_add, broadcast_mul};

use crate::layers::sliced::{Slice, SlicedBatchNorm2d, SlicedConv2d};

/// Which end of a layer's stored channels a call uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Left,
    Right,
}

impl Side {
    pub fn slice(self, stored: usize, len: usize) -> Slice {
        match self {
            Side::Left => Slice::left(len),
            Side::Right => Slice::right(stored, len),
        }
    }
}

/// How a forward pass picks sides: by each module's counter (training, and the two passes of
/// an evaluation), or one side everywhere without touching the counters (a monitor, a
/// stand-alone network).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sides {
    Counted,
    Fixed(Side),
}

/// A module's coupling counter: `lateral` sides (2: left then right, alternating; 1: left
/// only, AutoSlim-style).
#[derive(Debug)]
pub struct Lateral {
    lateral: usize,
    calls: AtomicUsize,
}

impl Lateral {
    pub fn new(lateral: usize) -> Self {
        Self {
            lateral,
            calls: AtomicUsize::new(0),
        }
    }

    fn side(&self, sides: Sides) -> Side {
        match sides {
            Sides::Fixed(side) => side,
            Sides::Counted => {
                let call = self.calls.fetch_add(1, Ordering::Relaxed);
                if self.lateral >= 2 && call % 2 == 1 {
                    Side::Right
                } else {
                    Side::Left
                }
            }
        }
    }

    /// Calls so far modulo the number of sides (what decides the next side).
    pub fn phase(&self) -> usize {
        self.calls.load(Ordering::Relaxed) % self.lateral.max(1)
    }

    pub fn set_phase(&self, phase: usize) {
        self.calls.store(phase, Ordering::Relaxed);
    }
}

/// Batch normalization as a pass wants it: training (batch statistics, running averages
/// moved by `momentum` if any) or evaluation (running statistics).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NormMode {
    pub train: bool,
    pub momentum: Option<f64>,
}

impl NormMode {
    pub const TRAIN: NormMode = NormMode {
        train: true,
        momentum: Some(0.1),
    };
    /// ScaleNet's search evaluation: each batch normalised by its own statistics (the
    /// official code resets BN and evaluates in train mode); running averages untouched.
    pub const BATCH_STATS: NormMode = NormMode {
        train: true,
        momentum: None,
    };
    pub const EVAL: NormMode = NormMode {
        train: false,
        momentum: None,
    };

    pub fn from_train(train: bool) -> Self {
        if train {
            Self::TRAIN
        } else {
            Self::EVAL
        }
    }
}

/// `x * relu6(x + 3) / 6`.
pub fn hswish(x: &Tensor) -> Result<Tensor> {
    x * hsigmoid(x)?
}

/// `relu6(x + 3) / 6`.
pub fn hsigmoid(x: &Tensor) -> Result<Tensor> {
    (x + 3.0)?.clamp(0.0, 6.0)? / 6.0
}

/// The official conv init: `N(0, sqrt(2 / (k * k * out_channels)))` over stored channels.
fn conv_init(k: usize, out: usize) -> Init {
    Init::Randn {
        mean: 0.0,
        stdev: (2.0 / (k * k * out) as f64).sqrt(),
    }
}

fn conv(
    vb: VarBuilder,
    c_in: usize,
    c_out: usize,
    k: usize,
    stride: usize,
) -> Result<SlicedConv2d> {
    SlicedConv2d::new(vb, c_in, c_out, k, stride, conv_init(k, c_out))
}

/// A conv, its BN, and the slices they run.
fn conv_bn(
    (c, n): &(SlicedConv2d, SlicedBatchNorm2d),
    x: &Tensor,
    input: Slice,
    output: Slice,
    norm: NormMode,
) -> Result<Tensor> {
    n.forward(
        &c.forward(x, input, output)?,
        output,
        norm.train,
        norm.momentum,
    )
}

/// The stem and the final 1x1 conv: conv (no bias), BN, HSwish (`conv`, `bn`).
#[derive(Debug)]
pub struct ConvBnAct {
    layer: (SlicedConv2d, SlicedBatchNorm2d),
    stored: (usize, usize),
    lateral: Lateral,
}

impl ConvBnAct {
    pub fn new(
        vb: VarBuilder,
        c_in: usize,
        c_out: usize,
        k: usize,
        stride: usize,
        lateral: usize,
    ) -> Result<Self> {
        Ok(Self {
            layer: (
                conv(vb.pp("conv"), c_in, c_out, k, stride)?,
                SlicedBatchNorm2d::new(vb.pp("bn"), c_out)?,
            ),
            stored: (c_in, c_out),
            lateral: Lateral::new(lateral),
        })
    }

    /// `out` channels from the input's.
    pub fn forward(&self, x: &Tensor, out: usize, sides: Sides, norm: NormMode) -> Result<Tensor> {
        let side = self.lateral.side(sides);
        let input = side.slice(self.stored.0, x.dim(1)?);
        hswish(&conv_bn(
            &self.layer,
            x,
            input,
            side.slice(self.stored.1, out),
            norm,
        )?)
    }

    pub fn lateral(&self) -> &Lateral {
        &self.lateral
    }
}

/// Squeeze-excite on the active hidden channels: mean pool, 1x1 conv to a quarter (bias),
/// ReLU, 1x1 conv back (bias), hard sigmoid, channel-wise product (`squeeze_conv`,
/// `excite_conv`).
#[derive(Debug)]
pub struct SqueezeExcite {
    squeeze: (Tensor, Tensor),
    excite: (Tensor, Tensor),
}

impl SqueezeExcite {
    pub fn new(vb: VarBuilder, channels: usize) -> Result<Self> {
        let reduced = channels / 4;
        let zero = Init::Const(0.0);
        let sq = vb.pp("squeeze_conv");
        let ex = vb.pp("excite_conv");
        Ok(Self {
            squeeze: (
                sq.get_with_hints((reduced, channels, 1, 1), "weight", conv_init(1, reduced))?,
                sq.get_with_hints(reduced, "bias", zero)?,
            ),
            excite: (
                ex.get_with_hints((channels, reduced, 1, 1), "weight", conv_init(1, channels))?,
                ex.get_with_hints(channels, "bias", zero)?,
            ),
        })
    }

    /// `x` holds the `hidden` channels; the squeeze width is `hidden.len / 4`, on `side`.
    pub fn forward(&self, x: &Tensor, side: Side, hidden: Slice) -> Result<Tensor> {
        let (n, c) = (x.dim(0)?, x.dim(1)?);
        let reduced = side.slice(self.squeeze.1.dim(0)?, c / 4);
        let matrix = |w: &Tensor, rows: Slice, cols: Slice| -> Result<Tensor> {
            w.narrow(0, rows.start, rows.len)?
                .narrow(1, cols.start, cols.len)?
                .squeeze(3)?
                .squeeze(2)?
                .t()?
                .contiguous()
        };
        let part = |b: &Tensor, s: Slice| b.narrow(0, s.start, s.len);
        let pooled = x.mean((2, 3))?;
        let z = pooled.matmul(&matrix(&self.squeeze.0, reduced, hidden)?)?;
        let z = broadcast_add(&z, &part(&self.squeeze.1, reduced)?)?.relu()?;
        let e = z.matmul(&matrix(&self.excite.0, hidden, reduced)?)?;
        let e = hsigmoid(&broadcast_add(&e, &part(&self.excite.1, hidden)?)?)?;
        broadcast_mul(x, &e.reshape((n, c, 1, 1))?)
    }
}

/// The inverted residual with squeeze-excite: (1x1 expand, BN, HSwish,) k x k depthwise
/// (stride), BN, HSwish, squeeze-excite, 1x1 project, BN, and the input added back where
/// the stored layer keeps its width at stride 1. With expansion 1 the depthwise conv runs
/// on the input directly (`conv1` is then the depthwise conv, as officially).
#[derive(Debug)]
pub struct InvertedResidual {
    expand: Option<(SlicedConv2d, SlicedBatchNorm2d)>,
    depthwise: (SlicedConv2d, SlicedBatchNorm2d),
    se: SqueezeExcite,
    project: (SlicedConv2d, SlicedBatchNorm2d),
    /// Stored input, hidden and output channels.
    stored: (usize, usize, usize),
    residual: bool,
    lateral: Lateral,
}

/// The stored widths and structure of one inverted residual.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IrShape {
    pub c_in: usize,
    pub hidden: usize,
    pub c_out: usize,
    pub kernel: usize,
    pub stride: usize,
    pub expand: bool,
    pub residual: bool,
}

impl InvertedResidual {
    pub fn new(vb: VarBuilder, s: IrShape, lateral: usize) -> Result<Self> {
        let bn = |name: &str, c| SlicedBatchNorm2d::new(vb.pp(name), c);
        let dw = |name: &str| {
            SlicedConv2d::depthwise(
                vb.pp(name),
                s.hidden,
                s.kernel,
                s.stride,
                conv_init(s.kernel, s.hidden),
            )
        };
        let (expand, depthwise) = if s.expand {
            (
                Some((
                    conv(vb.pp("conv1"), s.c_in, s.hidden, 1, 1)?,
                    bn("bn1", s.hidden)?,
                )),
                (dw("conv1_2")?, bn("bn1_2", s.hidden)?),
            )
        } else {
            (None, (dw("conv1")?, bn("bn1", s.hidden)?))
        };
        Ok(Self {
            expand,
            depthwise,
            se: SqueezeExcite::new(vb.pp("se"), s.hidden)?,
            project: (
                conv(vb.pp("conv2"), s.hidden, s.c_out, 1, 1)?,
                bn("bn2", s.c_out)?,
            ),
            stored: (s.c_in, s.hidden, s.c_out),
            residual: s.residual,
            lateral: Lateral::new(lateral),
        })
    }

    /// `hidden` and `out` active channels (without an expansion conv the hidden width is
    /// the input's).
    pub fn forward(
        &self,
        x: &Tensor,
        hidden: usize,
        out: usize,
        sides: Sides,
        norm: NormMode,
    ) -> Result<Tensor> {
        let side = self.lateral.side(sides);
        let (stored_in, stored_hidden, stored_out) = self.stored;
        let input = side.slice(stored_in, x.dim(1)?);
        let (y, h) = match &self.expand {
            Some(layer) => {
                let h = side.slice(stored_hidden, hidden);
                (hswish(&conv_bn(layer, x, input, h, norm)?)?, h)
            }
            None => (x.clone(), input),
        };
        let y = hswish(&conv_bn(&self.depthwise, &y, h, h, norm)?)?;
        let y = self.se.forward(&y, side, h)?;
        let y = conv_bn(&self.project, &y, h, side.slice(stored_out, out), norm)?;
        if self.residual {
            y + x
        } else {
            Ok(y)
        }
    }

    pub fn lateral(&self) -> &Lateral {
        &self.lateral
    }
}
