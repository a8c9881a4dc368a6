//! Ember's losses. Each takes logits `[n, classes]` (DIST also `[n, classes, h, w]`) and
//! returns a scalar reduced as the official code reduces it; all are compositions of
//! differentiable candle ops, computed in f32.

mod cross_entropy;
mod distill;

pub use cross_entropy::{cross_entropy, soft_target_cross_entropy};
pub use distill::{kd_loss, Dist, DistTerms, Probabilities};
