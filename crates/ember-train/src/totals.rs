//! The running sums of an epoch, kept in `ember.train_state` so a run resumed mid-epoch
//! reports the whole epoch, and what both training loops derive from them: the progress line,
//! the per-epoch record fields, the mid-epoch checkpoint timer and the divergence error.

use std::collections::BTreeMap;
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use ember_core::{EmberError, Result, RunDir};
use ember_data::{Batch, EpochBatches};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::settings::TrainSettings;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EpochTotals {
    pub loss_sum: f64,
    /// Correctly classified images, or pixels when `pixels` counts them (segmentation).
    pub correct: usize,
    pub seen: usize,
    /// Labelled pixels seen (segmentation; 0 otherwise).
    #[serde(default)]
    pub pixels: usize,
    pub seconds: f64,
    pub wait_seconds: f64,
    /// Seconds the loader spent augmenting this epoch's batches (on its worker threads).
    #[serde(default)]
    pub augment_seconds: f64,
    /// Sums of the objective's parts, weighted by batch size.
    #[serde(default)]
    pub parts: BTreeMap<String, f64>,
}

/// What one step adds to the epoch's totals; in a data-parallel run, summed over the ranks
/// so that every rank (and rank 0's records) counts the whole batch.
#[derive(Debug, Clone, PartialEq)]
pub struct StepTally {
    pub images: usize,
    /// The loss summed over the images (the batch mean times the batch size).
    pub loss_sum: f64,
    pub correct: usize,
    pub pixels: usize,
    /// Each loss part summed over the images.
    pub part_sums: Vec<(&'static str, f64)>,
}

impl StepTally {
    /// A step of `images` with mean loss `loss` and mean loss parts `parts`.
    pub fn new(images: usize, loss: f64, parts: &[(&'static str, Tensor)]) -> Result<Self> {
        let part_sums = parts
            .iter()
            .map(|(name, t)| {
                Ok((
                    *name,
                    t.to_dtype(DType::F64)?.to_scalar::<f64>()? * images as f64,
                ))
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            images,
            loss_sum: loss * images as f64,
            correct: 0,
            pixels: 0,
            part_sums,
        })
    }

    /// The mean loss of the step.
    pub fn loss(&self) -> f64 {
        self.loss_sum / self.images.max(1) as f64
    }

    /// The tally of the whole batch: summed over the ranks of a data-parallel run (one
    /// collective of a few numbers), itself alone.
    pub fn over_ranks(self, device: &Device) -> Result<Self> {
        if crate::dist::group().is_none() {
            return Ok(self);
        }
        let mut v = vec![
            self.images as f64,
            self.loss_sum,
            self.correct as f64,
            self.pixels as f64,
        ];
        v.extend(self.part_sums.iter().map(|(_, s)| *s));
        let v = crate::dist::sum_over_ranks(v, device)?;
        Ok(Self {
            images: v[0].round() as usize,
            loss_sum: v[1],
            correct: v[2].round() as usize,
            pixels: v[3].round() as usize,
            part_sums: self
                .part_sums
                .iter()
                .zip(&v[4..])
                .map(|((n, _), s)| (*n, *s))
                .collect(),
        })
    }
}

impl EpochTotals {
    /// Counts a finished step; `tick` is when the previous step ended (moved to now).
    pub fn add_tally(&mut self, tally: &StepTally, tick: &mut Instant) {
        for (name, sum) in &tally.part_sums {
            *self.parts.entry(name.to_string()).or_default() += sum;
        }
        self.correct += tally.correct;
        self.pixels += tally.pixels;
        self.loss_sum += tally.loss_sum;
        self.seen += tally.images;
        let now = Instant::now();
        self.seconds += (now - *tick).as_secs_f64();
        *tick = now;
    }

    /// Training accuracy in percent: of the images, or of the pixels for segmentation.
    pub fn accuracy(&self) -> f64 {
        let units = if self.pixels > 0 {
            self.pixels
        } else {
            self.seen
        };
        100.0 * self.correct as f64 / units.max(1) as f64
    }

    /// The progress bar's message: mean loss so far, the rate and throughput.
    pub fn progress_message(&self, lr: f64) -> String {
        let rate = self.seen as f64 / self.seconds.max(1e-9);
        let avg = self.loss_sum / self.seen.max(1) as f64;
        format!("loss {avg:.4} lr {lr:.2e} {rate:.0} img/s")
    }

    /// The epoch record's fields both loops share: `train_loss`, throughput, the shares of
    /// the epoch spent waiting for data and (CPU seconds, so above 1 with several workers
    /// busy) augmenting it, and `train_<part>` for every loss part.
    pub fn record(&self) -> Map<String, Value> {
        let seen = self.seen.max(1) as f64;
        let seconds = self.seconds.max(1e-9);
        let mut r = Map::new();
        r.insert("train_loss".into(), json!(self.loss_sum / seen));
        r.insert("images_per_s".into(), json!(self.seen as f64 / seconds));
        r.insert("data_wait_share".into(), json!(self.wait_seconds / seconds));
        r.insert(
            "augment_share".into(),
            json!(self.augment_seconds / seconds),
        );
        r.insert("epoch_seconds".into(), json!(self.seconds));
        for (name, sum) in &self.parts {
            r.insert(format!("train_{name}"), json!(sum / seen));
        }
        r
    }
}

/// The next batch of the epoch, counting into `totals` the time waited for it and the time
/// the loader spent augmenting it.
pub fn next_batch(batches: &mut EpochBatches, totals: &mut EpochTotals) -> Option<Result<Batch>> {
    let wait = Instant::now();
    let batch = batches.next()?;
    totals.wait_seconds += wait.elapsed().as_secs_f64();
    Some(batch.inspect(|b| totals.augment_seconds += b.augment_seconds))
}

/// The metrics records a resumed run keeps: those of the epochs its checkpoint has finished
/// (a record written after the checkpoint, by a run killed in between, is dropped).
pub fn kept_history(run: &RunDir, epochs_done: usize) -> Result<Vec<Value>> {
    run.retain_metrics(|r| {
        r["epoch"]
            .as_u64()
            .is_some_and(|e| (e as usize) <= epochs_done)
    })
}

/// Whether a mid-epoch checkpoint is due after global step `step` (counted from 1): the run's
/// `checkpoint_secs` have passed since `last`, or `step` is a multiple of its
/// `checkpoint_steps` (0 turns either off), and the epoch has batches left (its end writes
/// one anyway).
pub fn checkpoint_due(
    s: &TrainSettings,
    last: Instant,
    step: usize,
    batch: usize,
    batches: usize,
) -> bool {
    due_by(s.checkpoint_secs, s.checkpoint_steps, last, step) && batch < batches
}

fn due_by(secs: u64, steps: usize, last: Instant, step: usize) -> bool {
    (secs > 0 && last.elapsed().as_secs() >= secs) || (steps > 0 && step.is_multiple_of(steps))
}

/// The error that stops a run whose loss is not finite, naming the checkpoint it keeps.
pub fn diverged(run: &RunDir, what: &str, epoch: usize, batch: usize, loss: f64) -> EmberError {
    let last = run.file("last.safetensors");
    let kept = if last.exists() {
        format!("the last good checkpoint is {}", last.display())
    } else {
        "no checkpoint had been written yet".to_string()
    };
    EmberError::Runtime(format!(
        "{what} diverged at epoch {} step {} (loss {loss}); stopped, {kept}",
        epoch + 1,
        batch + 1,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_averages_per_image_and_reports_shares() {
        let mut t = EpochTotals::default();
        let mut tick = Instant::now();
        let kd = Tensor::new(1.0f32, &candle_core::Device::Cpu).unwrap();
        for (loss, n) in [(2.0, 10), (4.0, 30)] {
            t.add_tally(
                &StepTally::new(n, loss, &[("kd", kd.clone())]).unwrap(),
                &mut tick,
            );
        }
        t.seconds = 2.0;
        t.wait_seconds = 0.5;
        t.augment_seconds = 1.0;
        let r = t.record();
        assert_eq!(r["train_loss"], json!(3.5));
        assert_eq!(r["images_per_s"], json!(20.0));
        assert_eq!(r["data_wait_share"], json!(0.25));
        assert_eq!(r["augment_share"], json!(0.5));
        assert_eq!(r["train_kd"], json!(1.0));
    }

    #[test]
    fn checkpoints_fall_due_by_steps_or_by_time() {
        let now = Instant::now();
        let long_ago = now - std::time::Duration::from_secs(5);
        let due: Vec<usize> = (1..=7).filter(|&step| due_by(0, 3, now, step)).collect();
        assert_eq!(due, [3, 6]);
        assert!(due_by(2, 0, long_ago, 1));
        assert!(due_by(60, 4, long_ago, 8));
        assert!(!due_by(60, 0, long_ago, 1));
        assert!(!due_by(0, 0, long_ago, 6));
    }
}
