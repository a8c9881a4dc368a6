//! Building blocks shared by every model family. Each layer fetches its parameters through a
//! `VarBuilder` under the PyTorch names (`weight`, `bias`, `running_mean`, ...) so official
//! checkpoints load as they are, and computes through `ember-ops` where candle's own op is
//! wrong or slow for training.

mod batch_norm;
mod conv;
mod layer_norm;
mod linear;
mod noise;
pub mod sliced;

pub use batch_norm::{set_variable, BatchNorm2d};
pub use conv::Conv2d;
pub use layer_norm::LayerNorm;
pub use linear::{linear, linear_normal, linear_xavier, Linear};
pub use noise::{Dropout, Noise};
