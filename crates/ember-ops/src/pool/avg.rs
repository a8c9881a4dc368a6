//! Average and adaptive average pooling as separable resampling ([`crate::resample`]): each
//! window's weight is a row weight times a column weight, for every option PyTorch has.

use candle_core::{Result, Tensor};

use super::{output_sizes, planes};
use crate::params::{pair_setters, Pair};
use crate::resample::{resample, AxisMap};

/// `torch.nn.AvgPool2d(kernel, stride, padding, ceil_mode, count_include_pad,
/// divisor_override)`; the stride defaults to the kernel, `count_include_pad` to true.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AvgPool2dParams {
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub padding: [usize; 2],
    pub ceil_mode: bool,
    pub count_include_pad: bool,
    pub divisor_override: Option<usize>,
}

impl AvgPool2dParams {
    pub fn new(kernel: impl Into<Pair>) -> Self {
        let kernel = kernel.into().0;
        Self {
            kernel,
            stride: kernel,
            padding: [0, 0],
            ceil_mode: false,
            count_include_pad: true,
            divisor_override: None,
        }
    }

    pair_setters!(stride, padding);

    pub fn ceil_mode(mut self, ceil_mode: bool) -> Self {
        self.ceil_mode = ceil_mode;
        self
    }

    pub fn count_include_pad(mut self, count_include_pad: bool) -> Self {
        self.count_include_pad = count_include_pad;
        self
    }

    pub fn divisor_override(mut self, divisor: Option<usize>) -> Self {
        self.divisor_override = divisor;
        self
    }
}

/// One axis of `avg_pool2d` (torch's `avg_pool2d` CPU kernel): the window is clipped to the
/// padded input for the divisor (`count_include_pad`), then to the input for the taps.
/// `divisor` replaces the per-window weight: with a divisor override the rows carry
/// `1 / override` and the columns 1.
fn avg_axis(
    p: &AvgPool2dParams,
    axis: usize,
    input: usize,
    output: usize,
    divisor: Option<f64>,
) -> AxisMap {
    let (k, s, pad) = (p.kernel[axis], p.stride[axis], p.padding[axis]);
    AxisMap::new(input, output, |o| {
        let start = (o * s) as isize - pad as isize;
        let end = (start + k as isize).min((input + pad) as isize);
        let (lo, hi) = (start.max(0) as usize, (end.max(0) as usize).min(input));
        let count = if p.count_include_pad {
            (end - start) as f64
        } else {
            hi.saturating_sub(lo) as f64
        };
        let weight = divisor.unwrap_or(1.0 / count);
        (lo..hi).map(|i| (i, weight)).collect()
    })
}

fn avg_maps(x: &Tensor, p: &AvgPool2dParams) -> Result<(AxisMap, AxisMap)> {
    let op = "avg_pool2d";
    let (_, h, w) = planes(op, x)?;
    let [ho, wo] = output_sizes(
        op,
        [h, w],
        p.kernel,
        p.stride,
        p.padding,
        [1, 1],
        p.ceil_mode,
    )?;
    let (row_div, col_div) = match p.divisor_override {
        Some(0) => candle_core::bail!("{op}: divisor_override must be positive"),
        Some(d) => (Some(1.0 / d as f64), Some(1.0)),
        None => (None, None),
    };
    Ok((
        avg_axis(p, 0, h, ho, row_div),
        avg_axis(p, 1, w, wo, col_div),
    ))
}

/// Average pooling over the last two dims of `x`.
pub fn avg_pool2d(x: &Tensor, params: AvgPool2dParams) -> Result<Tensor> {
    let (rows, cols) = avg_maps(x, &params)?;
    resample(x, rows, cols)
}

/// One axis of `adaptive_avg_pool2d`: output `o` averages `floor(o * in / out)` up to
/// `ceil((o + 1) * in / out)`.
fn adaptive_axis(input: usize, output: usize) -> AxisMap {
    AxisMap::new(input, output, |o| {
        let (lo, hi) = (o * input / output, ((o + 1) * input).div_ceil(output));
        let weight = 1.0 / (hi - lo) as f64;
        (lo..hi).map(|i| (i, weight)).collect()
    })
}

fn adaptive_maps(x: &Tensor, size: [usize; 2]) -> Result<(AxisMap, AxisMap)> {
    let (_, h, w) = planes("adaptive_avg_pool2d", x)?;
    if size.contains(&0) || h == 0 || w == 0 {
        candle_core::bail!(
            "adaptive_avg_pool2d: output {size:?} and input {h}x{w} must be non-empty"
        )
    }
    Ok((adaptive_axis(h, size[0]), adaptive_axis(w, size[1])))
}

/// `torch.nn.functional.adaptive_avg_pool2d(x, size)`; `size = 1` is global average pooling.
pub fn adaptive_avg_pool2d(x: &Tensor, size: impl Into<Pair>) -> Result<Tensor> {
    let (rows, cols) = adaptive_maps(x, size.into().0)?;
    resample(x, rows, cols)
}

/// The same ops through dense matrices and candle matmuls.
pub mod composed {
    use super::*;

    pub fn avg_pool2d(x: &Tensor, params: AvgPool2dParams) -> Result<Tensor> {
        let (rows, cols) = avg_maps(x, &params)?;
        crate::resample::composed(x, &rows, &cols)
    }

    pub fn adaptive_avg_pool2d(x: &Tensor, size: impl Into<Pair>) -> Result<Tensor> {
        let (rows, cols) = adaptive_maps(x, size.into().0)?;
        crate::resample::composed(x, &rows, &cols)
    }
}
