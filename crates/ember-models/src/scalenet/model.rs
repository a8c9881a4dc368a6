//! A stand-alone ScaleNet model: one sub-network of the search space with its exact widths,
//! built from its [`Plan`] (what `scalenet-search export` writes), so `ember train --arch
//! scalenet --model-config FILE` trains it from scratch. Images are resized to the plan's
//! resolution first: the resolution is part of the searched model.

use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;

use super::blocks::{ConvBnAct, InvertedResidual, IrShape, NormMode, Side, Sides};
use super::space::Plan;
use super::supernet::{classifier, classify, resize};

#[derive(Debug)]
pub struct ScaleNet {
    plan: Plan,
    stem: ConvBnAct,
    blocks: Vec<InvertedResidual>,
    conv_out: ConvBnAct,
    head: (Tensor, Tensor),
}

/// Every layer whole: one side, nothing counted.
const WHOLE: Sides = Sides::Fixed(Side::Left);

impl ScaleNet {
    pub fn new(plan: &Plan, vb: VarBuilder) -> Result<Self> {
        plan.validate().map_err(candle_core::Error::Msg)?;
        let stem = ConvBnAct::new(vb.pp("stem"), plan.in_chans, plan.stem, 3, 2, 1)?;
        let blocks = plan
            .layers
            .iter()
            .enumerate()
            .map(|(i, l)| {
                let shape = IrShape {
                    c_in: l.c_in,
                    hidden: l.hidden,
                    c_out: l.c_out,
                    kernel: l.kernel,
                    stride: l.stride,
                    expand: l.expand,
                    residual: l.residual,
                };
                InvertedResidual::new(vb.pp(format!("blocks.{i}")), shape, 1)
            })
            .collect::<Result<Vec<_>>>()?;
        let conv_out = ConvBnAct::new(
            vb.pp("conv_out"),
            plan.last_channels(),
            plan.conv_out,
            1,
            1,
            1,
        )?;
        let head = classifier(vb.pp("classifier"), plan.conv_out, plan.num_classes)?;
        Ok(Self {
            plan: plan.clone(),
            stem,
            blocks,
            conv_out,
            head,
        })
    }

    pub fn plan(&self) -> &Plan {
        &self.plan
    }
}

impl crate::Classifier for ScaleNet {
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        classify(&self.head, &crate::Classifier::features(self, x, train)?)
    }

    fn features(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        self.feature_map(x, train)?.mean((2, 3))
    }

    fn feature_map(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let norm = NormMode::from_train(train);
        let p = &self.plan;
        let mut x = self
            .stem
            .forward(&resize(x, p.resolution)?, p.stem, WHOLE, norm)?;
        for (block, l) in self.blocks.iter().zip(&p.layers) {
            x = block.forward(&x, l.hidden, l.c_out, WHOLE, norm)?;
        }
        self.conv_out.forward(&x, p.conv_out, WHOLE, norm)
    }

    fn head_prefix(&self) -> &'static str {
        "classifier."
    }
}

#[cfg(test)]
mod tests {
    use super::super::space::Space;
    use super::*;
    use crate::Classifier;
    use candle_core::{DType, Device};
    use candle_nn::VarMap;

    #[test]
    fn parameters_match_the_exact_counter() {
        let s = Space::fashion();
        let base = vec![
            vec![2, 0],
            vec![1, 2, 0, 0, 0],
            vec![2, 0, 0, 0, 0],
            vec![1, 1, 0],
        ];
        let plan = s.plan(&s.scale(&base, 1.25, 1.3, 26));
        let vars = VarMap::new();
        let net = ScaleNet::new(
            &plan,
            VarBuilder::from_varmap(&vars, DType::F32, &Device::Cpu),
        )
        .unwrap();
        assert_eq!(
            crate::registry::parameter_count(&vars) as u64,
            plan.cost().params
        );
        let x = Tensor::randn(0f32, 1.0, (3, 1, 28, 28), &Device::Cpu).unwrap();
        assert_eq!(net.forward_t(&x, true).unwrap().dims(), [3, 10]);
    }
}
