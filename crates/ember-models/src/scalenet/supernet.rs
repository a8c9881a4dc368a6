//! ScaleNet's super-supernet (the official `core/search_space/model_initializer.py` and
//! `core/model/net.py`): one network that holds every base model of the space and every
//! scaled version of it. Every layer stores `c + ceil(c * w_max)` channels, every stage
//! `ceil(n * d_max)` slots, every slot one inverted residual per kernel; a sub-network picks
//! an op per slot, a width multiplier and a resolution, and the same weights serve all
//! resolutions. Parameter names are the official ones (`net.backbone_stage2_0.1.conv1.weight`,
//! `net.head_linear1.0.module.0.weight`). The never-selected skip op of a stage's first slot
//! (a 1x1 projection officially) is not stored: the encoding never picks it.

use candle_core::{Result, Tensor};
use candle_nn::{Init, VarBuilder};
use ember_ops::{broadcast_add, upsample_bilinear2d, Resize};

use super::blocks::{ConvBnAct, InvertedResidual, IrShape, Lateral, NormMode, Side, Sides};
use super::space::{scaled, Space, Subnet};

/// The official classifier init: `N(0, 0.01)`, bias 0.
pub(crate) fn classifier(
    vb: VarBuilder,
    inputs: usize,
    classes: usize,
) -> Result<(Tensor, Tensor)> {
    let init = Init::Randn {
        mean: 0.0,
        stdev: 0.01,
    };
    Ok((
        vb.get_with_hints((classes, inputs), "weight", init)?,
        vb.get_with_hints(classes, "bias", Init::Const(0.0))?,
    ))
}

pub(crate) fn classify(head: &(Tensor, Tensor), features: &Tensor) -> Result<Tensor> {
    broadcast_add(&features.matmul(&head.0.t()?)?, &head.1)
}

/// `x` resized (bilinear, PyTorch's `align_corners=False`) to `side x side` unless it is.
pub fn resize(x: &Tensor, side: usize) -> Result<Tensor> {
    if x.dim(2)? == side && x.dim(3)? == side {
        return Ok(x.clone());
    }
    upsample_bilinear2d(x, Resize::Size(side, side), false)
}

#[derive(Debug)]
pub struct SuperSupernet {
    space: Space,
    stem: ConvBnAct,
    /// `[stage][slot][op - 1]`.
    slots: Vec<Vec<Vec<InvertedResidual>>>,
    conv_out: ConvBnAct,
    head: (Tensor, Tensor),
    lateral: usize,
}

impl SuperSupernet {
    /// `lateral`: 2 for BCNet's coupled sides (official), 1 for the left side only.
    pub fn new(space: &Space, lateral: usize, vb: VarBuilder) -> Result<Self> {
        space.validate().map_err(candle_core::Error::Msg)?;
        let net = vb.pp("net");
        let stem_out = space.stored(space.stem);
        let stem = ConvBnAct::new(
            net.pp("backbone_conv_stem_0.0"),
            space.in_chans,
            stem_out,
            3,
            2,
            lateral,
        )?;
        let mut slots = Vec::new();
        for (i, (spec, &n)) in space.stages.iter().zip(&space.slots()).enumerate() {
            let mut stage = Vec::new();
            for j in 0..n {
                let c_in = space.stored(space.slot_input(i, j));
                let c_out = space.stored(spec.channels);
                let stride = if j == 0 { spec.stride } else { 1 };
                let ops = space
                    .kernels
                    .iter()
                    .enumerate()
                    .map(|(k, &kernel)| {
                        let shape = IrShape {
                            c_in,
                            hidden: c_in * spec.expansion,
                            c_out,
                            kernel,
                            stride,
                            expand: spec.expansion > 1,
                            residual: c_in == c_out && stride == 1,
                        };
                        let vb = net.pp(format!("backbone_stage{}_{j}.{}", i + 1, k + 1));
                        InvertedResidual::new(vb, shape, lateral)
                    })
                    .collect::<Result<Vec<_>>>()?;
                stage.push(ops);
            }
            slots.push(stage);
        }
        let last = space.stored(space.stages.last().map_or(space.stem, |s| s.channels));
        let conv_out = ConvBnAct::new(
            net.pp("backbone_conv_out_0.0"),
            last,
            space.conv_out,
            1,
            1,
            lateral,
        )?;
        let head = classifier(
            net.pp("head_linear1.0.module.0"),
            space.conv_out,
            space.num_classes,
        )?;
        Ok(Self {
            space: space.clone(),
            stem,
            slots,
            conv_out,
            head,
            lateral: lateral.clamp(1, 2),
        })
    }

    pub fn space(&self) -> &Space {
        &self.space
    }

    /// The pooled features of `subnet` on `x` (resized to its resolution).
    pub fn features(
        &self,
        x: &Tensor,
        subnet: &Subnet,
        sides: Sides,
        norm: NormMode,
    ) -> Result<Tensor> {
        let s = &self.space;
        if subnet.ops.len() != s.stages.len() {
            candle_core::bail!(
                "scalenet: {} stages in the sub-network, {} in the space",
                subnet.ops.len(),
                s.stages.len()
            )
        }
        let w = subnet.width;
        let mut x = self.stem.forward(
            &resize(x, subnet.resolution)?,
            scaled(s.stem, w),
            sides,
            norm,
        )?;
        for (i, (stage, ops)) in subnet.ops.iter().zip(&self.slots).enumerate() {
            let spec = &s.stages[i];
            if stage.len() != ops.len() {
                candle_core::bail!(
                    "scalenet: stage {i} has {} slots, the sub-network {}",
                    ops.len(),
                    stage.len()
                )
            }
            for (j, &op) in stage.iter().enumerate() {
                if op == 0 {
                    continue;
                }
                let block = ops[j].get(op - 1).ok_or_else(|| {
                    candle_core::Error::Msg(format!("scalenet: op {op} at stage {i} slot {j}"))
                })?;
                let hidden = if spec.expansion > 1 {
                    scaled(s.slot_input(i, j) * spec.expansion, w)
                } else {
                    x.dim(1)?
                };
                x = block.forward(&x, hidden, scaled(spec.channels, w), sides, norm)?;
            }
        }
        self.conv_out
            .forward(&x, s.conv_out, sides, norm)?
            .mean((2, 3))
    }

    /// Class logits of `subnet`.
    pub fn forward(
        &self,
        x: &Tensor,
        subnet: &Subnet,
        sides: Sides,
        norm: NormMode,
    ) -> Result<Tensor> {
        classify(&self.head, &self.features(x, subnet, sides, norm)?)
    }

    /// The search's estimate: with coupled sides, the logits of two counted passes summed
    /// (a left and a right use of every module; all left then all right when the counters
    /// start at phase 0), each batch normalised by its own statistics.
    pub fn evaluation_logits(&self, x: &Tensor, subnet: &Subnet) -> Result<Tensor> {
        let pass = || self.forward(x, subnet, Sides::Counted, NormMode::BATCH_STATS);
        let mut logits = pass()?;
        for _ in 1..self.lateral {
            logits = (logits + pass()?)?;
        }
        Ok(logits)
    }

    /// Every coupling counter, in a fixed order (to save, restore and reset them).
    pub fn laterals(&self) -> Vec<&Lateral> {
        let mut all = vec![self.stem.lateral()];
        all.extend(self.slots.iter().flatten().flatten().map(|b| b.lateral()));
        all.push(self.conv_out.lateral());
        all
    }

    /// The sub-network a kNN monitor follows: the deepest base of the largest kernel at
    /// stage 0, on the left side.
    pub fn reference(&self) -> Subnet {
        self.space.base_subnet(&self.space.deepest_base())
    }
}

impl crate::Classifier for SuperSupernet {
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        self.forward(
            x,
            &self.reference(),
            Sides::Fixed(Side::Left),
            NormMode::from_train(train),
        )
    }

    fn features(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        SuperSupernet::features(
            self,
            x,
            &self.reference(),
            Sides::Fixed(Side::Left),
            NormMode::from_train(train),
        )
    }

    fn feature_map(&self, _x: &Tensor, _train: bool) -> Result<Tensor> {
        candle_core::bail!("scalenet: the super-supernet has no single feature map")
    }

    fn head_prefix(&self) -> &'static str {
        "net.head_linear1."
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};
    use candle_nn::VarMap;

    fn tiny() -> (VarMap, SuperSupernet) {
        let mut space = Space::fashion();
        space.num_classes = 3;
        let vars = VarMap::new();
        let vb = VarBuilder::from_varmap(&vars, DType::F32, &Device::Cpu);
        let net = SuperSupernet::new(&space, 2, vb).unwrap();
        (vars, net)
    }

    fn var(vars: &VarMap, name: &str) -> Tensor {
        vars.data().lock().unwrap()[name].as_tensor().clone()
    }

    #[test]
    fn weights_are_stored_at_the_largest_scale_under_the_official_names() {
        let (vars, net) = tiny();
        // Stage 2 (16 -> 16 + ceil(16 * 1.35) = 38 stored; input 8 -> 19; hidden 19 * 3).
        let w = var(&vars, "net.backbone_stage2_0.2.conv1.weight");
        assert_eq!(w.dims(), [57, 19, 1, 1]);
        assert_eq!(
            var(&vars, "net.backbone_stage2_4.1.conv1_2.weight").dims(),
            [114, 1, 3, 3]
        );
        assert_eq!(
            var(&vars, "net.backbone_stage1_1.2.se.squeeze_conv.weight").dims(),
            [4, 19, 1, 1]
        );
        assert_eq!(
            var(&vars, "net.backbone_conv_out_0.0.conv.weight").dims(),
            [64, 76, 1, 1]
        );
        assert_eq!(
            var(&vars, "net.head_linear1.0.module.0.weight").dims(),
            [3, 64]
        );
        assert_eq!(net.laterals().len(), 2 + 2 * (2 + 5 + 5 + 3));
    }

    #[test]
    fn counted_passes_alternate_sides_and_train_only_their_slices() {
        let (vars, net) = tiny();
        let s = net.space().clone();
        let base = vec![
            vec![1, 0],
            vec![1, 0, 0, 0, 0],
            vec![1, 0, 0, 0, 0],
            vec![1, 0, 0],
        ];
        let sub = s.scale(&base, 1.0, 1.0, 20);
        let x = Tensor::randn(0f32, 1.0, (4, 1, 28, 28), &Device::Cpu).unwrap();
        let grad_of = |name: &str| {
            let y = net
                .forward(&x, &sub, Sides::Counted, NormMode::TRAIN)
                .unwrap();
            let grads = y.sqr().unwrap().sum_all().unwrap().backward().unwrap();
            let g = grads
                .get(&var(&vars, name))
                .unwrap()
                .flatten_from(1)
                .unwrap();
            g.abs().unwrap().sum(1).unwrap().to_vec1::<f32>().unwrap()
        };
        // Stage 4's first layer projects to ceil(32 * 1) = 32 of 32 + 44 = 76 stored outputs.
        let name = "net.backbone_stage4_0.1.conv2.weight";
        let first = grad_of(name);
        assert!(first[..32].iter().all(|&g| g > 0.0) && first[32..].iter().all(|&g| g == 0.0));
        let second = grad_of(name);
        assert!(second[..44].iter().all(|&g| g == 0.0) && second[44..].iter().all(|&g| g > 0.0));
        assert!(net.laterals().iter().all(|l| l.phase() == 0));
        // An evaluation sums a left and a right pass and leaves every counter where it was.
        let both = net.evaluation_logits(&x, &sub).unwrap();
        let left = net
            .forward(&x, &sub, Sides::Fixed(Side::Left), NormMode::BATCH_STATS)
            .unwrap();
        let right = net
            .forward(&x, &sub, Sides::Fixed(Side::Right), NormMode::BATCH_STATS)
            .unwrap();
        let diff = (both - (left + right).unwrap())
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap();
        assert!(diff.to_scalar::<f32>().unwrap() < 1e-5);
        assert!(net.laterals().iter().all(|l| l.phase() == 0));
    }
}
