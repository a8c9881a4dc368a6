//! Ember's differentiable ops: the ones candle 0.11 lacks or gets wrong for training, with
//! fast CPU kernels and a composition of gradient-safe candle ops for other devices.
//!
//! | op | what candle 0.11 does | here |
//! |---|---|---|
//! | [`conv2d`], [`conv1d`] | backward fails for stride > 1 on mixed-parity inputs; one stride for both axes; groups run one conv each; backward is a slow direct loop | GEMM over im2col tiles, forward and both gradients; per-axis stride/padding/dilation; direct depthwise kernels |
//! | [`conv_transpose2d`], [`conv_transpose1d`] | 1-d has no backward | the conv's input gradient, with both gradients |
//!
//! Every op here is checked against central finite differences in f64
//! (`tests/gradcheck.rs`, via [`gradcheck`]) and its kernel against the composition in
//! each module's `composed` submodule.

mod cpu;
mod gemm;
mod simd;

pub mod conv;
pub mod gradcheck;

pub use conv::{conv1d, conv2d, conv_transpose1d, conv_transpose2d, Conv1dParams, Conv2dParams, Pair};
