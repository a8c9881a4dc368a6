//! One module per `ember` subcommand; each returns the JSON it reports.

pub mod data;
pub mod eval;
pub mod info;
pub mod launch;
pub mod linear_eval;
pub mod predict;
pub mod pull;
pub mod train;

use candle_core::{DType, Device};
use ember_core::hub::HubEnv;
use ember_core::Result;
use ember_data::Preprocess;
use ember_models::{load_checkpoint, LoadedModel};

/// A checkpoint from a path or the Hub, with its model and preprocessing.
pub(crate) fn open_checkpoint(
    spec: &str,
    device: &Device,
    dtype: DType,
) -> Result<(LoadedModel, Preprocess)> {
    let path = HubEnv::from_env().resolve(spec)?;
    let loaded = load_checkpoint(&path, device, dtype, None)?;
    let preprocess = Preprocess::of_checkpoint(&loaded.checkpoint.meta, spec)?;
    Ok((loaded, preprocess))
}
