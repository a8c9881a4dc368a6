//! The Diverse Branch Block (`DiverseBranchBlock` of the official `dbb_block.py`): up to seven
//! parallel branches whose sum stands in for one kxk convolution during training, under the
//! official module and weight names.

use candle_core::{ModuleT, Result, Tensor};
use candle_nn::{Init, Module, VarBuilder};
use ember_ops::{avg_pool2d, AvgPool2dParams, Conv2dParams};

use super::{Branch, Branches, ConvShape, RepConv, RepPlan};
use crate::layers::{BatchNorm2d, Conv2d};

/// How the batch norms of a block compute.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum BnMode {
    /// Running statistics.
    Eval,
    /// Batch statistics; running statistics move by each BN's momentum.
    Train,
    /// Batch statistics; running statistics move by this momentum (1/n: a cumulative
    /// average, PyTorch's `momentum=None`, for recalibration).
    Calibrate(f64),
}

impl BnMode {
    pub(crate) fn from_train(train: bool) -> Self {
        if train {
            BnMode::Train
        } else {
            BnMode::Eval
        }
    }

    fn apply(self, bn: &BatchNorm2d, x: &Tensor) -> Result<Tensor> {
        match self {
            BnMode::Eval => bn.forward_t(x, false),
            BnMode::Train => bn.forward_t(x, true),
            BnMode::Calibrate(m) => bn.forward_train_momentum(x, m),
        }
    }
}

/// How the new variables of a block start.
#[derive(Debug, Clone, Copy)]
pub enum BranchInit {
    /// A block trained from the start (the RepVGG / DBB baselines): convolutions use the
    /// network's initialiser and every BN starts at scale 1.
    Fresh(Init),
    /// DyRep's growth (`_init_branch`): branch convolutions N(0, 2 / (kh kw cout)) (fan-out
    /// of that conv's own kernel), the last BN of each branch at scale 0.01 and earlier ones
    /// at 1, the kxk convolution at zero (it is set from the original kernel afterwards).
    Growth,
}

impl BranchInit {
    fn conv(self, kernel: (usize, usize), cout: usize) -> Init {
        match self {
            BranchInit::Fresh(init) => init,
            BranchInit::Growth => Init::Randn {
                mean: 0.0,
                stdev: (2.0 / (kernel.0 * kernel.1 * cout) as f64).sqrt(),
            },
        }
    }

    pub(crate) fn kxk_conv(self) -> Init {
        match self {
            BranchInit::Fresh(init) => init,
            BranchInit::Growth => Init::Const(0.0),
        }
    }

    /// The scale of a branch's BN: `last` is the branch's final BN.
    fn gamma(self, last: bool) -> f64 {
        match self {
            BranchInit::Growth if last => 0.01,
            _ => 1.0,
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct ConvBn {
    pub conv: Conv2d,
    pub bn: BatchNorm2d,
}

/// `BNAndPad`: a BN whose output is padded by `pad` pixels with the value the BN gives a zero
/// input (from the running statistics, after this batch updated them in training), so that
/// the following padding-free convolution sees what a zero-padded input would give.
#[derive(Debug, Clone)]
pub(crate) struct PadBn {
    pub bn: BatchNorm2d,
    pub pad: usize,
}

impl PadBn {
    fn forward(&self, x: &Tensor, mode: BnMode) -> Result<Tensor> {
        let y = mode.apply(&self.bn, x)?;
        if self.pad == 0 {
            return Ok(y);
        }
        // The official code reads the pad value from `.data`: no gradient flows into it.
        let (_, value) = self.bn.eval_affine()?;
        let value = value.reshape((1, (), 1, 1))?;
        let p = self.pad;
        y.broadcast_sub(&value)?
            .pad_with_zeros(2, p, p)?
            .pad_with_zeros(3, p, p)?
            .broadcast_add(&value)
    }
}

/// 1x1 conv, BN and pad, kxk conv (no padding; a slot that may grow itself), BN.
#[derive(Debug, Clone)]
pub(crate) struct OneKxk {
    pub conv1: Conv2d,
    pub bn1: PadBn,
    pub conv2: RepConv,
    pub bn2: BatchNorm2d,
}

/// (1x1 conv, BN and pad,) kxk average pooling, BN. Depthwise blocks pool the input directly
/// with the conv's padding.
#[derive(Debug, Clone)]
pub(crate) struct AvgBranch {
    pub first: Option<(Conv2d, PadBn)>,
    pub pool: AvgPool2dParams,
    pub bn: BatchNorm2d,
}

#[derive(Debug, Clone)]
pub struct DiverseBranchBlock {
    pub(crate) shape: ConvShape,
    pub(crate) branches: Branches,
    pub(crate) kxk: RepConv,
    pub(crate) kxk_bn: BatchNorm2d,
    pub(crate) one: Option<ConvBn>,
    pub(crate) one_kxk: Option<OneKxk>,
    pub(crate) avg: Option<AvgBranch>,
    pub(crate) one_k: Option<ConvBn>,
    pub(crate) k_one: Option<ConvBn>,
    pub(crate) id: Option<BatchNorm2d>,
}

impl DiverseBranchBlock {
    /// The block for a convolution of `shape` under `vb` (the slot's path), with `branches`
    /// fitted to the shape; nested slots take their form from `plan`.
    pub(crate) fn new(
        vb: VarBuilder,
        shape: ConvShape,
        branches: Branches,
        init: BranchInit,
        plan: &RepPlan,
    ) -> Result<Self> {
        let branches = branches.fitted(&shape);
        let ConvShape {
            cin,
            cout,
            k,
            stride,
            padding,
            groups,
            ..
        } = shape;
        let params = |s: usize, p: (usize, usize)| {
            Conv2dParams::default().stride(s).padding(p).groups(groups)
        };
        let conv =
            |vb: VarBuilder, ci: usize, co: usize, kernel: (usize, usize), p: Conv2dParams| {
                Conv2d::new(vb, ci, co, kernel, p, false, init.conv(kernel, co))
            };
        let bn = |vb: VarBuilder, c: usize, last: bool| {
            BatchNorm2d::with_weight_init(vb, c, init.gamma(last))
        };
        let conv_bn = |b: Branch, kernel: (usize, usize), p: (usize, usize)| -> Result<ConvBn> {
            let vb = vb.pp(b.key());
            Ok(ConvBn {
                conv: conv(vb.pp("conv"), cin, cout, kernel, params(stride, p))?,
                bn: bn(vb.pp("bn"), cout, true)?,
            })
        };
        let on = |b: Branch| branches.has(b);

        let kxk = RepConv::with_init(
            vb.pp(Branch::Kxk.key()).pp("conv"),
            ConvShape {
                bias: true,
                ..shape
            },
            init.kxk_conv(),
            init,
            plan,
        )?;
        let kxk_bn = BatchNorm2d::with_weight_init(vb.pp(Branch::Kxk.key()).pp("bn"), cout, 1.0)?;
        let one = on(Branch::OneByOne)
            .then(|| conv_bn(Branch::OneByOne, (1, 1), (0, 0)))
            .transpose()?;
        let one_kxk = on(Branch::OneByOneKxk)
            .then(|| -> Result<OneKxk> {
                // The official default internal width is cin.
                let vb = vb.pp(Branch::OneByOneKxk.key());
                let conv2_shape = ConvShape {
                    cin,
                    cout,
                    k,
                    stride,
                    padding: 0,
                    groups,
                    bias: false,
                };
                Ok(OneKxk {
                    conv1: conv(vb.pp("conv1"), cin, cin, (1, 1), params(1, (0, 0)))?,
                    bn1: PadBn {
                        bn: bn(vb.pp("bn1").pp("bn"), cin, false)?,
                        pad: padding,
                    },
                    conv2: RepConv::with_init(
                        vb.pp("conv2"),
                        conv2_shape,
                        init.conv((k, k), cout),
                        init,
                        plan,
                    )?,
                    bn2: bn(vb.pp("bn2"), cout, true)?,
                })
            })
            .transpose()?;
        let avg = on(Branch::OneByOneAvg)
            .then(|| -> Result<AvgBranch> {
                let vb = vb.pp(Branch::OneByOneAvg.key());
                let pool = AvgPool2dParams::new(k)
                    .stride(stride)
                    .count_include_pad(true);
                // A depthwise block has no 1x1 conv in front of the pooling.
                if groups < cout {
                    Ok(AvgBranch {
                        first: Some((
                            conv(vb.pp("conv"), cin, cout, (1, 1), params(1, (0, 0)))?,
                            PadBn {
                                bn: bn(vb.pp("bn").pp("bn"), cout, false)?,
                                pad: padding,
                            },
                        )),
                        pool,
                        bn: bn(vb.pp("avgbn"), cout, true)?,
                    })
                } else {
                    Ok(AvgBranch {
                        first: None,
                        pool: pool.padding(padding),
                        bn: bn(vb.pp("avgbn"), cout, true)?,
                    })
                }
            })
            .transpose()?;
        let one_k = on(Branch::OneByK)
            .then(|| conv_bn(Branch::OneByK, (1, k), (0, padding)))
            .transpose()?;
        let k_one = on(Branch::KByOne)
            .then(|| conv_bn(Branch::KByOne, (k, 1), (padding, 0)))
            .transpose()?;
        let id = on(Branch::Identity)
            .then(|| bn(vb.pp(Branch::Identity.key()), cout, true))
            .transpose()?;
        Ok(Self {
            shape,
            branches,
            kxk,
            kxk_bn,
            one,
            one_kxk,
            avg,
            one_k,
            k_one,
            id,
        })
    }

    pub fn branches(&self) -> Branches {
        self.branches
    }

    pub fn shape(&self) -> ConvShape {
        self.shape
    }

    /// The sum of the active branches, the kxk branch first and the others in index order.
    pub(crate) fn forward(&self, x: &Tensor, mode: BnMode) -> Result<Tensor> {
        let mut out = mode.apply(&self.kxk_bn, &self.kxk.forward_mode(x, mode)?)?;
        if let Some(b) = &self.one {
            out = (out + mode.apply(&b.bn, &b.conv.forward(x)?)?)?;
        }
        if let Some(b) = &self.one_kxk {
            let h = b.bn1.forward(&b.conv1.forward(x)?, mode)?;
            out = (out + mode.apply(&b.bn2, &b.conv2.forward_mode(&h, mode)?)?)?;
        }
        if let Some(b) = &self.avg {
            let h = match &b.first {
                Some((conv, pad_bn)) => pad_bn.forward(&conv.forward(x)?, mode)?,
                None => x.clone(),
            };
            out = (out + mode.apply(&b.bn, &avg_pool2d(&h, b.pool)?)?)?;
        }
        for b in [&self.one_k, &self.k_one].into_iter().flatten() {
            out = (out + mode.apply(&b.bn, &b.conv.forward(x)?)?)?;
        }
        if let Some(bn) = &self.id {
            out = (out + mode.apply(bn, x)?)?;
        }
        Ok(out)
    }

    /// Every BN of the block, nested blocks included.
    pub(crate) fn batch_norms(&self) -> Vec<BatchNorm2d> {
        let mut all = vec![self.kxk_bn.clone()];
        all.extend(self.kxk.batch_norms());
        all.extend(self.one.iter().map(|b| b.bn.clone()));
        if let Some(b) = &self.one_kxk {
            all.extend([b.bn1.bn.clone(), b.bn2.clone()]);
            all.extend(b.conv2.batch_norms());
        }
        if let Some(b) = &self.avg {
            all.extend(b.first.iter().map(|(_, p)| p.bn.clone()));
            all.push(b.bn.clone());
        }
        all.extend(
            [&self.one_k, &self.k_one]
                .into_iter()
                .flatten()
                .map(|b| b.bn.clone()),
        );
        all.extend(self.id.clone());
        all
    }

    /// The final BN of a branch: the one whose scale measures the branch's importance.
    pub(crate) fn last_bn(&self, b: Branch) -> Option<&BatchNorm2d> {
        match b {
            Branch::OneByOne => self.one.as_ref().map(|c| &c.bn),
            Branch::OneByOneKxk => self.one_kxk.as_ref().map(|c| &c.bn2),
            Branch::OneByOneAvg => self.avg.as_ref().map(|c| &c.bn),
            Branch::Kxk => Some(&self.kxk_bn),
            Branch::OneByK => self.one_k.as_ref().map(|c| &c.bn),
            Branch::KByOne => self.k_one.as_ref().map(|c| &c.bn),
            Branch::Identity => self.id.as_ref(),
        }
    }
}
