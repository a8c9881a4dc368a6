//! The convolution as candle custom ops. One geometry, three directions: the forward conv,
//! the input gradient (which, applied as a forward op, is the transposed convolution) and
//! the weight gradient. The backward of each differentiable direction is made of the others.
//! CPU storage runs Ember's kernels, CUDA storage cuDNN.

use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};

use super::algorithm;
use super::geometry::ConvGeometry;
use crate::cpu::float_kernel;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Direction {
    /// `(x, w) -> y`
    Forward,
    /// `(dy, w) -> dx`; as a forward op, `conv_transpose2d(x, w)`.
    InputGrad,
    /// `(dy, x) -> dw`; a backward kernel only.
    WeightGrad,
}

pub(crate) struct ConvOp {
    pub geometry: ConvGeometry,
    pub direction: Direction,
}

impl ConvOp {
    pub fn new(geometry: ConvGeometry, direction: Direction) -> Self {
        Self {
            geometry,
            direction,
        }
    }

    fn with(&self, direction: Direction) -> Self {
        Self::new(self.geometry, direction)
    }

    fn output_dims(&self) -> [usize; 4] {
        let g = &self.geometry;
        match self.direction {
            Direction::Forward => g.y_dims(),
            Direction::InputGrad => g.x_dims(),
            Direction::WeightGrad => g.w_dims(),
        }
    }
}

impl CustomOp2 for ConvOp {
    fn name(&self) -> &'static str {
        match self.direction {
            Direction::Forward => "ember.conv2d",
            Direction::InputGrad => "ember.conv_transpose2d",
            Direction::WeightGrad => "ember.conv2d_weight_grad",
        }
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let g = &self.geometry;
        let out = float_kernel!(self.name(), a = (s1, l1), b = (s2, l2) => match self.direction {
            Direction::Forward => algorithm::forward(a, b, g),
            Direction::InputGrad => algorithm::input_grad(a, b, g),
            Direction::WeightGrad => algorithm::weight_grad(a, b, g),
        })?;
        Ok((out, Shape::from(self.output_dims().to_vec())))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        let out = super::cudnn::run(&self.geometry, self.direction, (s1, l1), (s2, l2))?;
        Ok((out, Shape::from(self.output_dims().to_vec())))
    }

    fn bwd(
        &self,
        a: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        match self.direction {
            // a = x, b = w
            Direction::Forward => {
                let dx = a
                    .track_op()
                    .then(|| grad.apply_op2_no_bwd(b, &self.with(Direction::InputGrad)));
                let dw = b
                    .track_op()
                    .then(|| grad.apply_op2_no_bwd(a, &self.with(Direction::WeightGrad)));
                Ok((dx.transpose()?, dw.transpose()?))
            }
            // a = the transposed conv's input (the conv's dy), b = w; grad is the conv's x side.
            Direction::InputGrad => {
                let da = a
                    .track_op()
                    .then(|| grad.apply_op2_no_bwd(b, &self.with(Direction::Forward)));
                let dw = b
                    .track_op()
                    .then(|| a.apply_op2_no_bwd(&grad, &self.with(Direction::WeightGrad)));
                Ok((da.transpose()?, dw.transpose()?))
            }
            Direction::WeightGrad => {
                Err(candle_core::Error::BackwardNotSupported { op: self.name() })
            }
        }
    }
}
