//! 2-d (and 1-d) convolution and transposed convolution with per-axis stride, padding and
//! dilation, and groups. CPU tensors run Ember's kernels (GEMM over im2col tiles, direct
//! depthwise loops), CUDA tensors cuDNN (forward and both gradients, groups included);
//! other devices (Metal) run the composition in [`composed`].

mod algorithm;
pub mod composed;
#[cfg(feature = "cuda")]
mod cudnn;
mod depthwise;
mod gemm_conv;
mod geometry;
mod im2col;
mod op;
mod tiles;

use candle_core::{Result, Tensor};

pub use crate::params::Pair;
pub use geometry::Conv2dParams;
pub(crate) use geometry::ConvGeometry;
use op::{ConvOp, Direction};

use crate::cpu::in_kernel_precision;

/// `torch.nn.functional.conv2d(x, w, stride, padding, dilation, groups)` without bias:
/// `x` is `[n, cin, h, w]`, `w` is `[cout, cin / groups, kh, kw]`.
pub fn conv2d(x: &Tensor, w: &Tensor, params: Conv2dParams) -> Result<Tensor> {
    let geometry = ConvGeometry::for_conv(x.dims(), w.dims(), params)?;
    if x.device().is_cuda() {
        return x
            .contiguous()?
            .apply_op2(&w.contiguous()?, ConvOp::new(geometry, Direction::Forward));
    }
    if !x.device().is_cpu() {
        return if geometry.is_depthwise() {
            composed::depthwise_conv2d(x, w, params)
        } else {
            composed::conv2d(x, w, params)
        };
    }
    in_kernel_precision(&[x, w], |t| {
        t[0].contiguous()?.apply_op2(
            &t[1].contiguous()?,
            ConvOp::new(geometry, Direction::Forward),
        )
    })
}

/// `torch.nn.functional.conv_transpose2d(x, w, stride, padding, output_padding, groups,
/// dilation)` without bias: `x` is `[n, cin, h, w]`, `w` is `[cin, cout / groups, kh, kw]`.
pub fn conv_transpose2d(
    x: &Tensor,
    w: &Tensor,
    params: Conv2dParams,
    output_padding: impl Into<Pair>,
) -> Result<Tensor> {
    let output_padding = output_padding.into().0;
    let geometry = ConvGeometry::for_transpose(x.dims(), w.dims(), params, output_padding)?;
    if x.device().is_cuda() {
        return x.contiguous()?.apply_op2(
            &w.contiguous()?,
            ConvOp::new(geometry, Direction::InputGrad),
        );
    }
    if !x.device().is_cpu() {
        return composed::conv_transpose2d(x, w, params, output_padding);
    }
    in_kernel_precision(&[x, w], |t| {
        t[0].contiguous()?.apply_op2(
            &t[1].contiguous()?,
            ConvOp::new(geometry, Direction::InputGrad),
        )
    })
}

/// 1-d settings: stride, zero padding, dilation, groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Conv1dParams {
    pub stride: usize,
    pub padding: usize,
    pub dilation: usize,
    pub groups: usize,
}

impl Default for Conv1dParams {
    fn default() -> Self {
        Self {
            stride: 1,
            padding: 0,
            dilation: 1,
            groups: 1,
        }
    }
}

impl Conv1dParams {
    fn as_2d(self) -> Conv2dParams {
        Conv2dParams {
            stride: [1, self.stride],
            padding: [0, self.padding],
            dilation: [1, self.dilation],
            groups: self.groups,
        }
    }
}

fn check_3d(op: &str, what: &str, t: &Tensor) -> Result<()> {
    if t.rank() != 3 {
        candle_core::bail!("{op}: {what} must be 3-d, got shape {:?}", t.dims())
    }
    Ok(())
}

/// `torch.nn.functional.conv1d` without bias: `x` is `[n, cin, l]`, `w` `[cout, cin / groups, k]`.
/// Runs as a 2-d conv over a height-1 image.
pub fn conv1d(x: &Tensor, w: &Tensor, params: Conv1dParams) -> Result<Tensor> {
    check_3d("conv1d", "input", x)?;
    check_3d("conv1d", "weight", w)?;
    conv2d(&x.unsqueeze(2)?, &w.unsqueeze(2)?, params.as_2d())?.squeeze(2)
}

/// `torch.nn.functional.conv_transpose1d` without bias (candle's own has no backward).
pub fn conv_transpose1d(
    x: &Tensor,
    w: &Tensor,
    params: Conv1dParams,
    output_padding: usize,
) -> Result<Tensor> {
    check_3d("conv_transpose1d", "input", x)?;
    check_3d("conv_transpose1d", "weight", w)?;
    conv_transpose2d(
        &x.unsqueeze(2)?,
        &w.unsqueeze(2)?,
        params.as_2d(),
        (0, output_padding),
    )?
    .squeeze(2)
}

/// Forward FLOPs (2 x multiply-adds) of `conv2d(x, w, params)` for these shapes, for
/// throughput reports.
pub fn conv2d_flops(x: &[usize], w: &[usize], params: Conv2dParams) -> Result<f64> {
    Ok(ConvGeometry::for_conv(x, w, params)?.flops())
}
