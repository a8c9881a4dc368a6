//! Ember's differentiable ops: the ones candle 0.11 lacks or gets wrong for training, with
//! fast CPU kernels and a composition of gradient-safe candle ops for other devices.
//!
//! | op | what candle 0.11 does | here |
//! |---|---|---|
//! | [`conv2d`], [`conv1d`] | backward fails for stride > 1 on mixed-parity inputs; one stride for both axes; groups run one conv each; backward is a slow direct loop | GEMM over im2col tiles, forward and both gradients; per-axis stride/padding/dilation; direct depthwise kernels |
//! | [`batch_norm`] | training mode transposes, copies and returns a non-contiguous tensor; ~8 passes forward, a chain of ops backward | one pass for the statistics, one to normalise, one fused backward |
//! | [`conv_transpose2d`], [`conv_transpose1d`] | 1-d has no backward | the conv's input gradient, with both gradients |
//! | [`broadcast_add`], [`broadcast_mul`] | the broadcast operand's gradient sums over strided dims (30x slower than over the last) | one contiguous pass |
//! | [`gelu`] | scalar libm erf per element; a five-op backward | one vectorised pass each way |
//!
//! Every op here is checked against central finite differences in f64
//! (`tests/gradcheck.rs`, via [`gradcheck`]) and its kernel against the composition in
//! each module's `composed` submodule.

mod cpu;
mod gemm;
mod params;
mod resample;
mod simd;
mod strided;

pub mod batch_norm;
pub mod broadcast;
pub mod conv;
#[cfg(feature = "cuda")]
pub mod cuda;
pub mod gelu;
pub mod gradcheck;
pub mod norm;
pub mod normalize;
pub mod pool;
pub mod softmax;
pub mod sync_batch_norm;
pub mod upsample;

pub use batch_norm::{
    batch_norm, batch_norm_train, batch_stats, BatchStats, Mode as BatchNormMode,
};
pub use broadcast::{broadcast_add, broadcast_mul, sum_keepdim};
pub use conv::{
    conv1d, conv2d, conv_transpose1d, conv_transpose2d, Conv1dParams, Conv2dParams, Pair,
};
pub use gelu::gelu;
pub use norm::{layer_norm, layer_norm_channels};
pub use normalize::{l2_norm_keepdim, l2_normalize};
pub use pool::{adaptive_avg_pool2d, avg_pool2d, max_pool2d, AvgPool2dParams, MaxPool2dParams};
pub use softmax::softmax;
pub use upsample::{upsample_bilinear2d, upsample_nearest2d, Resize};

/// Whether Ember's own CUDA kernels run `x` (softmax, layer norm): a CUDA tensor of f32,
/// bf16 or f16; f64 there takes the composed path.
pub(crate) fn on_cuda_kernels(x: &candle_core::Tensor) -> bool {
    x.device().is_cuda() && x.dtype() != candle_core::DType::F64
}
