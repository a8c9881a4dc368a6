//! Ember's training engine: optimizers with parameter groups and checkpointable state,
//! learning-rate schedules, gradient clipping, EMA, momentum encoders and feature queues,
//! mixup/cutmix, top-k and segmentation metrics, kNN and feature extraction, and the resumable loops
//! (supervised with a pluggable objective; self-supervised with a pluggable pretext) with
//! progress, checkpoints and a divergence guard.

pub mod clip;
pub mod dist;
pub mod ema;
pub mod evaluate;
pub mod features;
pub mod metrics;
pub mod mix;
pub mod momentum;
pub mod objective;
pub mod optim;
pub mod precision;
pub mod pretrain;
pub mod probe;
pub mod progress;
pub mod queue;
pub mod schedule;
pub mod segmentation;
pub mod settings;
pub mod structure;
pub mod totals;
pub mod trainer;

pub use evaluate::{evaluate, EvalResult};
pub use features::{extract, Knn};
pub use momentum::{cosine_momentum, MomentumEncoder, MomentumScope};
pub use objective::{CrossEntropy, Objective, StepInput, StepLoss};
pub use pretrain::{Monitor, Pretext, PretrainSummary, Pretrainer};
pub use probe::{class_fraction, linear_probe, ProbeResult, ProbeSettings};
pub use queue::FeatureQueue;
pub use segmentation::{pixel_rows, Confusion, SegScores};
pub use settings::{OptimizerKind, ScheduleKind, TrainSettings};
pub use structure::{EpochChange, RunContext, StructureHook};
pub use trainer::{Summary, TrainState, Trainer};
