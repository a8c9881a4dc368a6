//! Ember's training engine: optimizers with parameter groups and checkpointable state,
//! learning-rate schedules, gradient clipping, EMA, momentum encoders and feature queues,
//! mixup/cutmix, top-k metrics, and the resumable train/eval loop (with a pluggable
//! objective) with progress, checkpoints and a divergence guard.

pub mod clip;
pub mod ema;
pub mod evaluate;
pub mod metrics;
pub mod mix;
pub mod momentum;
pub mod objective;
pub mod optim;
pub mod progress;
pub mod queue;
pub mod schedule;
pub mod settings;
pub mod structure;
pub mod trainer;

pub use evaluate::{evaluate, EvalResult};
pub use momentum::{cosine_momentum, MomentumEncoder, MomentumScope};
pub use objective::{CrossEntropy, Objective, StepInput, StepLoss};
pub use queue::FeatureQueue;
pub use settings::{OptimizerKind, ScheduleKind, TrainSettings};
pub use structure::{EpochChange, RunContext, StructureHook};
pub use trainer::{Summary, TrainState, Trainer};
