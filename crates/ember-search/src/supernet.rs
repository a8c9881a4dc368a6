//! A width-search supernet over a Channel-Bench-Macro network: training (a [`Pretext`] the
//! pre-training loop drives) and scoring a width vector (spec sections 2.2-2.5).
//!
//! Training, per step: a width vector c (uniform bins per variable; every other step the
//! complement of the previous one), then for BCNet the loss `0.5 CE(left(c)) + 0.5
//! CE(right(c))` in one graph (identical gradients to the official two half-weighted
//! passes), or for the unilateral baseline (AutoSlim-style, `Coupling::Left`) `CE(left(c))`
//! alone. Scoring: for each path, reset every BN's running statistics, re-estimate them as a
//! cumulative average over a few training batches without gradient, then measure top-1 on
//! held-out images; BCNet's score is the mean of the two paths', the baseline's the left.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use ember_core::hub::HubEnv;
use ember_core::{Checkpoint, CheckpointMeta, EmberError, EmberRng, Result, SeededVarMap};
use ember_data::source::Subset;
use ember_data::{DataSource, Dataset, Loader, LoaderConfig, Preprocess};
use ember_losses::cross_entropy;
use ember_models::cbm::{MacroNet, BN_MOMENTUM};
use ember_models::layers::sliced::Slice;
use ember_models::Classifier;
use ember_train::optim::{default_groups, ParamGroup};
use ember_train::trainer::parameters;
use ember_train::{Pretext, StepLoss};
use serde_json::Value;

use crate::bcnet::BinnedWidths;

/// Which paths a width trains and scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coupling {
    /// BCNet: the left and the right path, half each.
    Bilateral,
    /// The unilateral baseline: the left path only.
    Left,
}

pub struct Supernet {
    pub net: MacroNet,
    pub widths: BinnedWidths,
    pub coupling: Coupling,
    /// The prefix of the net's variables in the run's var map.
    pub prefix: String,
    seed: u64,
    /// (loss, widths) of the lowest training losses seen (for BCNet's prior), lowest first.
    records: RefCell<Vec<(f64, Vec<usize>)>>,
}

/// Loss records kept (BCNetV2's code keeps the 100 lowest).
pub const RECORDS: usize = 100;
/// The records' name in the pretext state of `last.safetensors`.
pub const RECORDS_KEY: &str = "records";

/// Loss records from their saved rows `[loss, bins...]`.
pub fn records_from(t: &Tensor) -> Result<Vec<(f64, Vec<usize>)>> {
    let rows: Vec<Vec<f32>> = t.to_dtype(DType::F32)?.to_vec2()?;
    Ok(rows
        .into_iter()
        .filter(|r| !r.is_empty())
        .map(|r| {
            (
                r[0] as f64,
                r[1..].iter().map(|&b| b.round() as usize).collect(),
            )
        })
        .collect())
}

impl Supernet {
    pub fn new(
        net: MacroNet,
        widths: BinnedWidths,
        coupling: Coupling,
        prefix: &str,
        seed: u64,
    ) -> Self {
        Self {
            net,
            widths,
            coupling,
            prefix: prefix.to_string(),
            seed,
            records: RefCell::new(Vec::new()),
        }
    }

    /// The width vector of training step `step`: a fresh draw for each pair of steps, its
    /// complement on the second step of the pair (BCNet's stochastic complementary
    /// training; the unilateral baseline draws afresh every step).
    pub fn widths_at(&self, step: usize) -> Result<Vec<usize>> {
        let draw = |i: usize| {
            self.widths.sample(&mut EmberRng::for_name(
                self.seed,
                &format!("bcnet/widths/{i}"),
            ))
        };
        match self.coupling {
            Coupling::Left => Ok(draw(step)),
            Coupling::Bilateral if step.is_multiple_of(2) => Ok(draw(step / 2)),
            Coupling::Bilateral => self.widths.complement(&draw(step / 2)),
        }
    }

    /// The paths of `c` this supernet trains and scores.
    pub fn paths(&self, c: &[usize]) -> Result<Vec<Vec<Slice>>> {
        let mut paths = vec![self.widths.left(c)?];
        if self.coupling == Coupling::Bilateral {
            paths.push(self.widths.right(c)?);
        }
        Ok(paths)
    }

    /// The lowest training losses so far, with their widths.
    pub fn records(&self) -> Vec<(f64, Vec<usize>)> {
        self.records.borrow().clone()
    }

    fn record(&self, loss: f64, c: Vec<usize>) {
        let mut r = self.records.borrow_mut();
        let at = r.partition_point(|(l, _)| *l <= loss);
        if at < RECORDS {
            r.insert(at, (loss, c));
            r.truncate(RECORDS);
        }
    }

    /// Top-1 (%) of one path on `data.eval` after re-estimating the BN statistics on
    /// `data.calibration` (reset, then a cumulative average).
    pub fn path_accuracy(&self, path: &[Slice], data: &ScoringData) -> Result<f64> {
        for bn in self.net.norms() {
            bn.reset_running()?;
        }
        for (k, x) in data.calibration.iter().enumerate() {
            let momentum = 1.0 / (k + 1) as f64;
            self.net.forward_sliced(x, path, true, Some(momentum))?;
        }
        data.top1(|x| self.net.forward_sliced(x, path, false, None))
    }

    /// The supernet's estimate of `c`: the mean of its paths' re-calibrated top-1.
    pub fn score(&self, c: &[usize], data: &ScoringData) -> Result<f64> {
        let paths = self.paths(c)?;
        let mut total = 0.0;
        for path in &paths {
            total += self.path_accuracy(path, data)?;
        }
        Ok(total / paths.len() as f64)
    }
}

/// The images every width is scored on, decoded once for a whole search: the batches that
/// re-estimate BN statistics and the held-out batches with their labels.
pub struct ScoringData {
    pub calibration: Vec<Tensor>,
    pub eval: Vec<(Tensor, Vec<u32>)>,
}

/// The trained supernet a search reads: `spec` is a training run's folder (its
/// `backbone.safetensors`) or a checkpoint (a path or hf://...) whose `ember.pretrained`
/// metadata records `method`; returns the checkpoint and that record. `tool` names the
/// training command in the error.
pub fn open_supernet(
    spec: &str,
    method: &str,
    tool: &str,
    device: &Device,
) -> Result<(Checkpoint, Value)> {
    let run = Path::new(spec);
    let path = if run.is_dir() {
        run.join("backbone.safetensors")
    } else {
        HubEnv::from_env().resolve(spec)?
    };
    let ckpt = Checkpoint::load(&path, device)?;
    let info = ckpt
        .meta
        .extra
        .get("pretrained")
        .and_then(|p| serde_json::from_str::<Value>(p).ok())
        .filter(|v| v["method"] == method)
        .ok_or_else(|| {
            EmberError::bad_input(format!(
                "--supernet {spec}: not a supernet of `{tool} train`"
            ))
        })?;
    Ok((ckpt, info))
}

/// How a search splits the training set it scores on: the last `holdout` images are
/// measured, the batches before them re-estimate BN statistics.
#[derive(Debug, Clone)]
pub struct HeldOut {
    /// The data the supernet was trained on (`fashion-mnist`, a folder, ...).
    pub data: String,
    pub holdout: usize,
    pub calibration_batches: usize,
    pub batch_size: usize,
}

impl HeldOut {
    /// The split of the data a checkpoint was trained on, with its evaluation transforms
    /// (`what` names the checkpoint in errors); also the images' side.
    pub fn load(
        &self,
        meta: &CheckpointMeta,
        what: &str,
        device: &Device,
    ) -> Result<(ScoringData, usize)> {
        let prep = Preprocess::of_checkpoint(meta, what)?;
        let data = ember_data::open(
            &DataSource::from_str(&self.data)?,
            prep.channels,
            prep.height,
        )?;
        let n = data.train.len();
        if self.holdout == 0 || self.holdout >= n || self.batch_size < 2 {
            return Err(EmberError::bad_input(format!(
                "--holdout must lie in 1..{n} and --batch-size be at least 2"
            )));
        }
        let part = |range: std::ops::Range<usize>, name: &'static str| -> Arc<dyn Dataset> {
            Arc::new(Subset::new(data.train.clone(), range.collect(), name))
        };
        let loader = |ds: Arc<dyn Dataset>| {
            let cfg = LoaderConfig {
                batch_size: self.batch_size,
                shuffle: false,
                drop_last: false,
                workers: 2,
                seed: 0,
                shard: ember_data::Shard::WHOLE,
            };
            Loader::new(ds, prep.eval_pipeline(), cfg)
        };
        let scoring = ScoringData::load(
            &loader(part(0..n - self.holdout, "calibration"))?,
            self.calibration_batches,
            &loader(part(n - self.holdout..n, "held-out"))?,
            device,
            DType::F32,
        )?;
        Ok((scoring, prep.height))
    }
}

impl ScoringData {
    /// Top-1 (%) on the held-out images of a model given as its logits.
    pub fn top1(&self, logits: impl Fn(&Tensor) -> candle_core::Result<Tensor>) -> Result<f64> {
        let (mut correct, mut seen) = (0usize, 0usize);
        for (x, labels) in &self.eval {
            let predicted: Vec<u32> = logits(x)?.argmax(1)?.to_vec1()?;
            correct += predicted.iter().zip(labels).filter(|(p, y)| p == y).count();
            seen += labels.len();
        }
        Ok(100.0 * correct as f64 / seen.max(1) as f64)
    }

    /// The first `calibration` batches of `calib` and every batch of `eval`.
    pub fn load(
        calib: &Loader,
        calibration: usize,
        eval: &Loader,
        device: &Device,
        dtype: DType,
    ) -> Result<Self> {
        let images = |batch: &ember_data::Batch| -> Result<Tensor> {
            Ok(batch.to_tensors(device)?.0.to_dtype(dtype)?)
        };
        let calibration = calib
            .epoch(0, 0)
            .take(calibration)
            .map(|b| images(&b?))
            .collect::<Result<Vec<_>>>()?;
        let eval = eval
            .epoch(0, 0)
            .map(|b| {
                let b = b?;
                Ok((images(&b)?, b.labels.clone()))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { calibration, eval })
    }
}

impl Pretext for Supernet {
    fn loss(&self, views: &[Tensor], labels: &[u32], step: usize) -> Result<StepLoss> {
        let x = &views[0];
        let y = Tensor::new(labels, x.device())?;
        let c = self.widths_at(step)?;
        let paths = self.paths(&c)?;
        let mut parts = Vec::new();
        let mut total: Option<Tensor> = None;
        for (path, name) in paths.iter().zip(["left", "right"]) {
            let logits = self.net.forward_sliced(x, path, true, Some(BN_MOMENTUM))?;
            let ce = cross_entropy(&logits.to_dtype(DType::F32)?, &y, 0.0)?;
            let share = (&ce / paths.len() as f64)?;
            total = Some(match total {
                Some(t) => (t + share)?,
                None => share,
            });
            parts.push((name, ce));
        }
        let total = total.expect("at least the left path");
        self.record(total.to_dtype(DType::F64)?.to_scalar::<f64>()?, c);
        Ok(StepLoss { total, parts })
    }

    /// Weight decay on the conv and linear weights only (BCNetV2's parameter groups).
    fn groups(&self, vars: &SeededVarMap, weight_decay: f64) -> Vec<ParamGroup> {
        default_groups(parameters(vars), weight_decay, &[])
    }

    /// The loss records, as rows `[loss, bins...]`, so a resumed run keeps them.
    fn state(&self) -> Vec<(String, Tensor)> {
        let records = self.records.borrow();
        if records.is_empty() {
            return Vec::new();
        }
        let cols = 1 + self.widths.variables();
        let rows: Vec<f32> = records
            .iter()
            .flat_map(|(loss, c)| std::iter::once(*loss as f32).chain(c.iter().map(|&b| b as f32)))
            .collect();
        match Tensor::from_vec(rows, (records.len(), cols), &Device::Cpu) {
            Ok(t) => vec![(RECORDS_KEY.to_string(), t)],
            Err(_) => Vec::new(),
        }
    }

    fn restore(&self, saved: &HashMap<String, Tensor>) -> Result<()> {
        if let Some(t) = saved.get(RECORDS_KEY) {
            *self.records.borrow_mut() = records_from(t)?;
        }
        Ok(())
    }

    fn backbone(&self) -> &dyn Classifier {
        &self.net
    }

    fn backbone_prefix(&self) -> &str {
        &self.prefix
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ember_models::cbm::{Config, Layout};

    fn supernet(coupling: Coupling) -> (SeededVarMap, Supernet) {
        let widths = BinnedWidths::new(vec![8, 16, 16, 16, 8, 16, 16], 4, 1).unwrap();
        let cfg = Config {
            layout: Layout::MobileNet,
            widths: widths.stored(),
            in_chans: 1,
            num_classes: 3,
        };
        let vars = SeededVarMap::new(0);
        let vb = vars.var_builder(DType::F32, &Device::Cpu).pp("supernet");
        let net = MacroNet::new(&cfg, vb).unwrap();
        (vars, Supernet::new(net, widths, coupling, "supernet", 7))
    }

    #[test]
    fn steps_alternate_a_draw_and_its_complement() {
        let (_, s) = supernet(Coupling::Bilateral);
        for pair in 0..5 {
            let (a, b) = (
                s.widths_at(2 * pair).unwrap(),
                s.widths_at(2 * pair + 1).unwrap(),
            );
            assert_eq!(b, s.widths.complement(&a).unwrap());
            assert_eq!(
                a,
                s.widths_at(2 * pair).unwrap(),
                "a step's widths are fixed"
            );
        }
        let (_, ua) = supernet(Coupling::Left);
        assert_eq!(ua.paths(&[2; 7]).unwrap().len(), 1);
    }

    #[test]
    fn the_bilateral_loss_halves_both_paths_and_keeps_the_lowest_records() {
        let (_, s) = supernet(Coupling::Bilateral);
        let x = Tensor::randn(0f32, 1.0, (4, 1, 16, 16), &Device::Cpu).unwrap();
        for step in 0..3 {
            let out = s
                .loss(std::slice::from_ref(&x), &[0, 1, 2, 0], step)
                .unwrap();
            let value = |t: &Tensor| t.to_scalar::<f32>().unwrap();
            let (l, r) = (value(&out.parts[0].1), value(&out.parts[1].1));
            assert!((value(&out.total) - 0.5 * (l + r)).abs() < 1e-6);
        }
        let records = s.records();
        assert_eq!(records.len(), 3);
        assert!(records.windows(2).all(|w| w[0].0 <= w[1].0));
        // Saved and restored (a resumed run keeps them), to f32 precision.
        let (_, fresh) = supernet(Coupling::Bilateral);
        fresh.restore(&s.state().into_iter().collect()).unwrap();
        for (a, b) in fresh.records().iter().zip(&records) {
            assert!((a.0 - b.0).abs() < 1e-6 && a.1 == b.1);
        }
    }
}
