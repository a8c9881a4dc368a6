//! DyRep's structure evolution (`DyRep.record_metrics` / `adjust_model`) as a trainer hook:
//! every step scores each growable convolution; every `interval` epochs (until
//! `max_adjust_epoch`) the best-scoring one grows into a Diverse Branch Block, optionally
//! recalibrated on training batches, and every block's branches are checked for a cut.

use std::cell::RefCell;
use std::collections::BTreeMap;

use candle_core::backprop::GradStore;
use ember_core::Result;
use ember_models::rep::{cut, Branches, Importance, RepConv, RepPlan};
use ember_models::Classifier;
use ember_train::{EpochChange, RunContext, StructureHook};
use serde_json::{json, Map, Value};

/// The knobs of the procedure (official defaults in brackets in `recipe.rs`).
#[derive(Debug, Clone, Copy)]
pub struct Evolution {
    /// Epochs between adjustments.
    pub interval: usize,
    /// No adjustment after this epoch (1-based count of finished epochs).
    pub max_adjust_epoch: usize,
    pub importance: Importance,
    /// The branches a grown block gets (fitted to each conv).
    pub branches: Branches,
    /// Training batches that recalibrate a new block's BNs (0: none).
    pub recal_iters: usize,
    /// The cut rule's spread and floor.
    pub spread: f64,
    pub floor: f64,
}

/// Running sum and count of a slot's scores since the last adjustment.
type Records = BTreeMap<String, (f64, usize)>;

pub struct DyRep {
    pub evolution: Evolution,
    records: RefCell<Records>,
}

impl DyRep {
    pub fn new(evolution: Evolution) -> Self {
        Self {
            evolution,
            records: RefCell::new(Records::new()),
        }
    }
}

/// Every slot of the model, nested ones included, outermost first.
fn slots(model: &dyn Classifier) -> Vec<RepConv> {
    let mut all = Vec::new();
    for site in model.rep_sites() {
        site.conv.visit(&mut |s| all.push(s.clone()));
    }
    all
}

/// Plain square convolutions larger than 1x1, nested at most once (`record_metrics`).
fn candidates(model: &dyn Classifier) -> Vec<RepConv> {
    slots(model)
        .into_iter()
        .filter(|s| s.weight().is_some() && s.shape().can_grow() && s.depth() < 2)
        .collect()
}

/// The structure as a plan, for the model config.
pub fn plan(model: &dyn Classifier) -> RepPlan {
    let mut plan = RepPlan::default();
    for site in model.rep_sites() {
        site.conv.record(&mut plan);
    }
    plan
}

/// Branches per top-level growable slot: 1 for a plain convolution, each nested block adding
/// its branches beyond the convolution it replaced.
pub fn branch_counts(model: &dyn Classifier) -> BTreeMap<String, usize> {
    model
        .rep_sites()
        .into_iter()
        .filter(|site| site.conv.shape().can_grow())
        .map(|site| {
            let mut n = 1;
            site.conv
                .visit(&mut |s| n += s.branches().map_or(0, |b| b.count() - 1));
            (site.conv.path().to_string(), n)
        })
        .collect()
}

/// `config` with `rep` set to the model's structure (and absent when every slot is plain).
pub fn with_plan(config: &Value, plan: &RepPlan) -> Value {
    let mut config = config.clone();
    if let Some(fields) = config.as_object_mut() {
        if plan.is_empty() {
            fields.remove("rep");
        } else {
            fields.insert(
                "rep".into(),
                serde_json::to_value(plan).expect("plans serialise"),
            );
        }
    }
    config
}

impl DyRep {
    /// Grows `slot`, recalibrating the new block's BNs first when asked to.
    fn grow(&self, run: &RunContext, slot: &RepConv, epoch: usize) -> Result<()> {
        let original = slot.grow(run.vars, self.evolution.branches)?;
        if self.evolution.recal_iters > 0 {
            slot.begin_calibration()?;
            // A draw of its own so the training order is untouched.
            let batches = run.train.epoch(1_000_000 + epoch, 0);
            for batch in batches.take(self.evolution.recal_iters) {
                let (x, _) = batch?.to_tensors(run.device)?;
                run.model.forward_t(&x.to_dtype(run.dtype)?, false)?;
            }
            slot.end_calibration();
        }
        slot.absorb(&original)?;
        Ok(())
    }
}

impl StructureHook for DyRep {
    fn after_backward(&self, run: &RunContext, grads: &GradStore) -> Result<()> {
        let mut records = self.records.borrow_mut();
        for slot in candidates(run.model) {
            let Some(w) = slot.weight() else { continue };
            let Some(g) = grads.get(&w) else { continue };
            let score = self.evolution.importance.score(g, &w)?;
            let entry = records.entry(slot.path().to_string()).or_default();
            entry.0 += score;
            entry.1 += 1;
        }
        Ok(())
    }

    fn after_epoch(&self, run: &RunContext, epoch: usize) -> Result<EpochChange> {
        let e = &self.evolution;
        let due = (epoch + 1).is_multiple_of(e.interval.max(1)) && epoch < e.max_adjust_epoch;
        let mut record = Map::new();
        if due {
            let mut averages: Vec<(String, f64)> = self
                .records
                .borrow()
                .iter()
                .map(|(k, (sum, n))| (k.clone(), sum / (*n).max(1) as f64))
                .collect();
            averages.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            let top = averages.first().map(|(k, _)| k.clone());
            let grown =
                match top.and_then(|p| candidates(run.model).into_iter().find(|s| s.path() == p)) {
                    Some(slot) => {
                        self.grow(run, &slot, epoch)?;
                        Some(slot.path().to_string())
                    }
                    None => None,
                };
            self.records.borrow_mut().clear();
            let mut cuts = Vec::new();
            // By path, looked up afresh: a cut rebuilds the blocks nested in the one it cuts.
            let paths: Vec<String> = slots(run.model)
                .iter()
                .map(|s| s.path().to_string())
                .collect();
            for path in paths {
                let Some(slot) = slots(run.model).into_iter().find(|s| s.path() == path) else {
                    continue;
                };
                let Some(weights) = slot.branch_weights()? else {
                    continue;
                };
                if let Some(keep) = cut::branches_to_keep(&weights, e.spread, e.floor) {
                    slot.cut(run.vars, keep)?;
                    cuts.push(json!({ "slot": slot.path(), "kept": keep.flags() }));
                }
            }
            let scores: Vec<Value> = averages
                .iter()
                .take(3)
                .map(|(k, v)| json!([k, v]))
                .collect();
            record.insert("rep_grown".into(), json!(grown));
            record.insert("rep_cut".into(), json!(cuts));
            record.insert("rep_top_scores".into(), json!(scores));
        }
        record.insert("rep_branches".into(), json!(branch_counts(run.model)));
        record.insert("rep_plan".into(), json!(plan(run.model)));
        Ok(EpochChange {
            changed: due,
            record,
        })
    }

    fn config(&self, run: &RunContext, base: &Value) -> Value {
        with_plan(base, &plan(run.model))
    }

    fn state(&self) -> Value {
        json!(self.records.borrow().clone())
    }

    fn restore(&self, state: &Value) -> Result<()> {
        let records: Records = serde_json::from_value(state.clone()).map_err(|e| {
            ember_core::EmberError::bad_input(format!("bad DyRep state in the checkpoint ({e})"))
        })?;
        *self.records.borrow_mut() = records;
        Ok(())
    }
}
