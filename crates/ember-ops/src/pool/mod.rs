//! 2-d pooling with PyTorch's semantics: max and average pooling with padding, any stride
//! (kernel != stride included), dilation (max), ceil mode and `count_include_pad`; adaptive
//! average pooling.
//!
//! candle's `max_pool2d` scales its gradient by `1 / (kh * kw)`, and neither of its pools
//! has a backward when kernel != stride (the 3x3/s2 max-pool of the ResNet stem) or a padding
//! argument (specs/candle.md 1.1, candle #1593 and #1851).

mod avg;
mod max;

pub use avg::{adaptive_avg_pool2d, avg_pool2d, AvgPool2dParams};
pub use max::{max_pool2d, MaxPool2dParams};

/// Composed (device-generic) pooling: the path for CUDA and Metal tensors and the reference
/// the CPU kernels are tested against.
pub mod composed {
    pub use super::avg::composed::{adaptive_avg_pool2d, avg_pool2d};
    pub use super::max::composed::max_pool2d;
}

use candle_core::{bail, Result, Tensor};

/// Output length along one axis (`torch`'s `pooling_output_shape`): with `ceil_mode` the
/// last window may hang over the end, but must start inside the input or its left padding.
pub(crate) fn output_size(
    op: &str,
    input: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    dilation: usize,
    ceil_mode: bool,
) -> Result<usize> {
    if kernel == 0 || stride == 0 || dilation == 0 {
        bail!("{op}: kernel, stride and dilation must be positive")
    }
    let reach = dilation * (kernel - 1) + 1;
    if 2 * padding > reach {
        bail!("{op}: padding {padding} must be at most half the kernel's reach {reach}")
    }
    if input + 2 * padding < reach {
        bail!("{op}: input size {input} (+ 2x{padding} padding) is smaller than the kernel's reach {reach}")
    }
    let span = input + 2 * padding - reach;
    let mut out = if ceil_mode {
        span.div_ceil(stride)
    } else {
        span / stride
    } + 1;
    if ceil_mode && (out - 1) * stride >= input + padding {
        out -= 1;
    }
    Ok(out)
}

/// [`output_size`] for both axes of a `[h, w]` input.
pub(crate) fn output_sizes(
    op: &str,
    input: [usize; 2],
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
    dilation: [usize; 2],
    ceil_mode: bool,
) -> Result<[usize; 2]> {
    let axis = |a: usize| {
        output_size(
            op,
            input[a],
            kernel[a],
            stride[a],
            padding[a],
            dilation[a],
            ceil_mode,
        )
    };
    Ok([axis(0)?, axis(1)?])
}

/// `(n * c, h, w)` of a `[..., h, w]` input, or an error naming the op.
pub(crate) fn planes(op: &str, x: &Tensor) -> Result<(usize, usize, usize)> {
    let dims = x.dims();
    if dims.len() < 3 {
        bail!("{op}: input must be [n, c, h, w] or [c, h, w], got {dims:?}")
    }
    let (h, w) = (dims[dims.len() - 2], dims[dims.len() - 1]);
    Ok((x.elem_count() / (h * w).max(1), h, w))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_sizes_follow_pytorch() {
        // nn.MaxPool2d(3, 2, 1) on 112 -> 56 (ResNet stem); on 7 -> 4.
        assert_eq!(output_size("p", 112, 3, 2, 1, 1, false).unwrap(), 56);
        assert_eq!(output_size("p", 7, 3, 2, 1, 1, false).unwrap(), 4);
        // ceil mode: 6 with k2 s2 -> 3 either way; 5 -> 2 floor, 3 ceil.
        assert_eq!(output_size("p", 5, 2, 2, 0, 1, false).unwrap(), 2);
        assert_eq!(output_size("p", 5, 2, 2, 0, 1, true).unwrap(), 3);
        // ceil mode never starts a window in the right padding: 6, k3 s3 p1 -> 3 (not 3 + 1).
        assert_eq!(output_size("p", 6, 3, 3, 1, 1, true).unwrap(), 3);
        // dilation 2, k3: reach 5.
        assert_eq!(output_size("p", 9, 3, 1, 0, 2, false).unwrap(), 5);
        assert!(output_size("p", 9, 3, 1, 2, 1, false).is_err());
        assert!(output_size("p", 1, 3, 1, 0, 1, false).is_err());
    }
}
