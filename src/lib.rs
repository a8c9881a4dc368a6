//! Ember: ten methods for efficient deep learning, reproduced on candle, each shipped as a
//! command-line tool. This root package re-exports the workspace crates for the end-to-end
//! tests and benches; see README.md and DESIGN.md for the map.

pub use ember_core;
pub use ember_ops;
