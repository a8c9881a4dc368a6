//! Ember's losses. Each takes logits `[n, classes]` and returns the batch mean, as PyTorch's
//! `reduction="mean"`; all are compositions of differentiable candle ops.

mod cross_entropy;

pub use cross_entropy::{cross_entropy, soft_target_cross_entropy};
