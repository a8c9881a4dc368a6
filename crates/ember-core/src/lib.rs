//! Ember's foundation: errors with exit codes, device choice, a seeded random number
//! generator and the weight initialisers the models need.
//!
//! candle's CPU random numbers cannot be seeded (`Device::Cpu.set_seed` errors and
//! `Tensor::randn`, `VarMap` and `Dropout` all draw from `rand::rng()`), so everything
//! random in Ember draws from [`EmberRng`] instead, and every model parameter is created
//! through [`SeededVarMap`] or [`init::Init`].

pub mod atomic;
pub mod checkpoint;
pub mod device;
pub mod dist;
pub mod error;
pub mod hub;
pub mod init;
pub mod mosaic;
pub mod plot;
pub mod rng;
pub mod run_dir;
pub mod varmap;

pub use checkpoint::{Checkpoint, CheckpointMeta};
pub use device::DeviceChoice;
pub use error::{EmberError, Result};
pub use init::Init;
pub use rng::EmberRng;
pub use run_dir::RunDir;
pub use varmap::SeededVarMap;
