//! Methods that change a model's structure while it trains (DyRep grows and cuts branches):
//! the trainer lets such a method watch every step's gradients and act after each epoch's
//! evaluation, then re-collects the parameters for the optimizer and records the structure in
//! its checkpoints.

use candle_core::backprop::GradStore;
use candle_core::{DType, Device};
use ember_core::{Result, SeededVarMap};
use ember_data::Loader;
use ember_models::Classifier;
use serde_json::{Map, Value};

/// What a structure method sees of the run.
pub struct RunContext<'a> {
    pub model: &'a dyn Classifier,
    pub vars: &'a SeededVarMap,
    /// The training data (recalibration draws batches from it).
    pub train: &'a Loader,
    pub device: &'a Device,
    pub dtype: DType,
}

pub trait StructureHook {
    /// After each backward pass, before the optimizer step.
    fn after_backward(&self, run: &RunContext, grads: &GradStore) -> Result<()>;

    /// After the evaluation of `epoch` (0-based): changes the structure if it is time to,
    /// and returns what to add to the epoch's metrics record and whether anything changed.
    fn after_epoch(&self, run: &RunContext, epoch: usize) -> Result<EpochChange>;

    /// The model config as the structure now stands (saved in every checkpoint), from the
    /// config the run started with.
    fn config(&self, run: &RunContext, base: &Value) -> Value;

    /// State a resumed run needs (saved with `last.safetensors`), and its restoration.
    fn state(&self) -> Value;
    fn restore(&self, state: &Value) -> Result<()>;
}

/// The result of [`StructureHook::after_epoch`].
#[derive(Debug, Default)]
pub struct EpochChange {
    /// The model's parameters changed: the optimizer must collect them again (state of the
    /// surviving ones is kept, by name).
    pub changed: bool,
    /// Fields for the epoch's metrics record.
    pub record: Map<String, Value>,
}
