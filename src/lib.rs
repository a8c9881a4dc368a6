//! Ember: ten methods for efficient deep learning, reproduced on candle, each shipped as a
//! command-line tool. This root package is the umbrella `ember` tool (train, eval, predict,
//! info, pull) and holds the end-to-end tests and benches; see README.md and DESIGN.md.

pub mod cli;
pub mod commands;

pub use ember_core;
pub use ember_ops;
