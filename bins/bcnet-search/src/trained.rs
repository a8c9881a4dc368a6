//! A trained supernet as `search` and `score` use it: the exported checkpoint rebuilt with
//! its bins (from `ember.pretrained`), its variables writable so BN re-calibration can
//! overwrite the running statistics, and the images it is scored on: a held-out tail of
//! the training set (top-1) and the batches before it (BN re-calibration).

use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use clap::Args;
use ember_core::{Checkpoint, EmberError, Result, SeededVarMap};
use ember_models::cbm::{self, MacroNet};
use ember_search::bcnet::BinnedWidths;
use ember_search::supernet::{
    open_supernet, records_from, Coupling, HeldOut, ScoringData, Supernet, RECORDS_KEY,
};
use ember_train::pretrain::PRETEXT_PREFIX;

#[derive(Debug, Clone, Args)]
pub struct SupernetFile {
    /// The trained supernet: the run folder of `bcnet-search train` (its
    /// backbone.safetensors, and the loss records of last.safetensors for BCNet's prior), or
    /// the supernet file alone (a path or hf://...).
    #[arg(long, value_name = "DIR|CKPT")]
    pub supernet: String,
    /// The data the supernet was trained on (see `ember train --help`).
    #[arg(long, default_value = "fashion-mnist")]
    pub data: String,
    /// Training images held out at the end of the training set, on which each width's
    /// top-1 is measured.
    #[arg(long, default_value_t = 2000)]
    pub holdout: usize,
    /// Training batches that re-estimate the BN statistics of each path before it is
    /// measured (the official code: 20).
    #[arg(long, default_value_t = 10)]
    pub calibration_batches: usize,
    #[arg(long, default_value_t = 128)]
    pub batch_size: usize,
}

pub struct Trained {
    pub supernet: Supernet,
    /// The calibration and held-out images, decoded once.
    pub data: ScoringData,
    /// The training run's lowest losses and their widths (empty for a supernet file alone).
    pub records: Vec<(f64, Vec<usize>)>,
    pub model: cbm::Config,
    pub side: usize,
    _vars: SeededVarMap,
}

impl SupernetFile {
    pub fn open(&self, device: &Device) -> Result<Trained> {
        let run = Path::new(&self.supernet);
        let records = if run.is_dir() {
            run_records(&run.join("last.safetensors"))?
        } else {
            Vec::new()
        };
        let (ckpt, info) = open_supernet(&self.supernet, "bcnet", "bcnet-search", device)?;
        let what = format!("--supernet {}", self.supernet);
        let bad = |detail: &str| EmberError::bad_input(format!("{what}: {detail}"));
        let model: cbm::Config = serde_json::from_value(ckpt.meta.config.clone())
            .map_err(|e| bad(&format!("its model config: {e}")))?;
        let field = |k: &str| info[k].as_u64().map(|v| v as usize);
        let maxima: Vec<usize> = serde_json::from_value(info["maxima"].clone())
            .map_err(|e| bad(&format!("its maxima: {e}")))?;
        let (bins, min_bins) = field("bins")
            .zip(field("min_bins"))
            .ok_or_else(|| bad("its bins are not recorded"))?;
        let widths = BinnedWidths::new(maxima, bins, min_bins)?;
        if widths.stored() != model.widths {
            return Err(bad("its stored widths do not match its bins"));
        }
        let coupling = match info["coupling"].as_str() {
            Some("ua") => Coupling::Left,
            _ => Coupling::Bilateral,
        };
        let vars = SeededVarMap::new(0);
        let net = MacroNet::new(&model, vars.var_builder(DType::F32, device))?;
        ember_models::load_into(vars.vars(), &ckpt.tensors, &what)?;

        if self.calibration_batches == 0 {
            return Err(EmberError::bad_input(
                "--calibration-batches must be positive",
            ));
        }
        let split = HeldOut {
            data: self.data.clone(),
            holdout: self.holdout,
            calibration_batches: self.calibration_batches,
            batch_size: self.batch_size,
        };
        let (data, side) = split.load(&ckpt.meta, &what, device)?;
        Ok(Trained {
            supernet: Supernet::new(net, widths, coupling, "", 0),
            data,
            records,
            model,
            side,
            _vars: vars,
        })
    }
}

impl Trained {
    /// The supernet's estimate of width vector `c` (bins per variable).
    pub fn score(&self, c: &[usize]) -> Result<f64> {
        self.supernet.score(c, &self.data)
    }

    /// The plain network of width vector `c`: a model config `ember train` trains.
    pub fn config_of(&self, c: &[usize]) -> Result<cbm::Config> {
        Ok(cbm::Config {
            widths: self.supernet.widths.channels(c)?,
            ..self.model.clone()
        })
    }

    /// MACs of width vector `c` at the data's input size.
    pub fn macs(&self, c: &[usize]) -> Result<u64> {
        Ok(self.config_of(c)?.cost(self.side).macs)
    }

    /// MACs of the largest sub-network (every variable at K bins).
    pub fn max_macs(&self) -> Result<u64> {
        let k = self.supernet.widths.bins;
        self.macs(&vec![k; self.supernet.widths.variables()])
    }
}

/// The loss records a training run saved in its last checkpoint (none if it has none).
fn run_records(last: &Path) -> Result<Vec<(f64, Vec<usize>)>> {
    if !last.is_file() {
        return Ok(Vec::new());
    }
    let ckpt = Checkpoint::load(last, &Device::Cpu)?;
    let key = format!("{PRETEXT_PREFIX}{RECORDS_KEY}");
    match ckpt.tensors.get(&key) {
        Some(t) => records_from(t),
        None => Ok(Vec::new()),
    }
}

/// Parses `8,8,6,4,...` as bins per variable.
pub fn parse_widths(text: &str) -> Result<Vec<usize>> {
    text.split(',')
        .map(|t| {
            t.trim().parse::<usize>().map_err(|_| {
                EmberError::bad_input(format!("--widths {text}: comma-separated bin counts"))
            })
        })
        .collect()
}

/// Where a command's files go.
pub fn out_dir(out: &Option<PathBuf>, tool: &str) -> PathBuf {
    out.clone().unwrap_or_else(|| {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        PathBuf::from(format!("runs/{tool}-{secs}"))
    })
}
