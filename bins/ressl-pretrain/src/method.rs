//! ReSSL as `network/ressl.py` runs it, on any registered backbone: the student
//! (`encoder_q`) embeds the strong view, the teacher (`encoder_k`, a momentum copy) the weak
//! one; the loss is the cross-entropy between their sharpened similarity distributions over
//! a queue of past teacher embeddings. Optionally the first steps use InfoNCE with the same
//! queue (the journal version's warm-up; off by default, as the released code).

use std::cell::RefCell;
use std::collections::HashMap;

use candle_core::{DType, Module, Tensor};
use ember_core::{EmberError, EmberRng, Result, SeededVarMap};
use ember_losses::{infonce, relation_loss};
use ember_models::ssl::ProjectionHead;
use ember_models::Classifier;
use ember_ops::l2_normalize;
use ember_train::optim::{groups_by_name, ParamGroup};
use ember_train::trainer::parameters;
use ember_train::{dist, FeatureQueue, MomentumEncoder, MomentumScope, Pretext, StepLoss};

use ember_cli::pretrain::Build;

/// The student's prefix in the var map and in official checkpoints.
pub const STUDENT: &str = "encoder_q";
pub const TEACHER: &str = "encoder_k";
/// The student's backbone (what is exported).
pub const BACKBONE: &str = "encoder_q.net";
/// InfoNCE temperature of the warm-up (MoCo v2's).
const INFONCE_TAU: f64 = 0.2;

/// ReSSL's knobs.
#[derive(Debug, Clone, PartialEq)]
pub struct ResslSettings {
    pub dim: usize,
    pub hidden: usize,
    pub queue: usize,
    pub momentum: f64,
    pub tau_s: f64,
    pub tau_t: f64,
    /// Optimizer steps trained with InfoNCE before the relation loss.
    pub warmup_steps: usize,
}

pub struct Ressl {
    student: Box<dyn Classifier>,
    teacher: Box<dyn Classifier>,
    head_q: ProjectionHead,
    head_k: ProjectionHead,
    ema: MomentumEncoder,
    queue: RefCell<FeatureQueue>,
    cfg: ResslSettings,
    seed: u64,
}

impl Ressl {
    pub fn new(b: &Build, cfg: ResslSettings) -> Result<Self> {
        if cfg.queue < b.batch_size {
            return Err(EmberError::bad_input(format!(
                "--queue {} is smaller than a batch ({})",
                cfg.queue, b.batch_size
            )));
        }
        let student = b.backbone(BACKBONE)?;
        let teacher = b.backbone(&format!("{TEACHER}.net"))?;
        let (width, _) = b.widths(student.as_ref())?;
        let vb = b.vars.var_builder(b.dtype, b.device);
        let head_q = ProjectionHead::new(vb.pp(STUDENT).pp("head"), width, cfg.hidden, cfg.dim)?;
        let head_k = ProjectionHead::new(vb.pp(TEACHER).pp("head"), width, cfg.hidden, cfg.dim)?;
        // The teacher starts as a copy of the student and then only follows it.
        let ema =
            MomentumEncoder::pair(&b.vars.named(), STUDENT, TEACHER, MomentumScope::Parameters)?;
        ema.copy_online()?;
        let mut rng = EmberRng::for_name(b.seed, "ressl/queue");
        let queue = FeatureQueue::random(cfg.dim, cfg.queue, &mut rng, b.device)?;
        Ok(Self {
            student,
            teacher,
            head_q,
            head_k,
            ema,
            queue: RefCell::new(queue),
            cfg,
            seed: b.seed,
        })
    }
}

impl Pretext for Ressl {
    /// `views`: (strong, weak), the order of ReSSL's dataset.
    fn loss(&self, views: &[Tensor], _labels: &[u32], step: usize) -> Result<StepLoss> {
        let [strong, weak] = views else {
            return Err(EmberError::Runtime("ReSSL needs two views".into()));
        };
        let q = l2_normalize(
            &self.head_q.forward(&self.student.features(strong, true)?)?,
            1,
        )?;
        // ReSSL.forward: the teacher moves before it embeds (with the student's weights of
        // before this step's update); it runs in training mode, as the official teacher.
        self.ema.update(self.cfg.momentum)?;
        // Under `ember launch` the teacher embeds a random share of the global batch
        // (the official shuffled batch norm) and every rank's keys enter the queue, as
        // the official `concat_all_gather`; alone, it embeds this batch.
        let mut shuffle = EmberRng::for_name(self.seed, &format!("ressl/shuffle/{step}"));
        let keys = dist::forward_shuffled(weak, &mut shuffle, |x| {
            l2_normalize(&self.head_k.forward(&self.teacher.features(x, true)?)?, 1)
        })?
        .to_dtype(DType::F32)?;
        let (q, k) = (q.to_dtype(DType::F32)?, dist::own_rows(&keys)?);
        let mut queue = self.queue.borrow_mut();
        let total = if step < self.cfg.warmup_steps {
            infonce(&q, &k, queue.entries(), INFONCE_TAU)?
        } else {
            relation_loss(&q, &k, queue.entries(), self.cfg.tau_s, self.cfg.tau_t)?.loss
        };
        queue.enqueue(&keys)?;
        Ok(StepLoss {
            total,
            parts: Vec::new(),
        })
    }

    /// The official split: no weight decay for names with "bn" or "bias".
    fn groups(&self, vars: &SeededVarMap, weight_decay: f64) -> Vec<ParamGroup> {
        let student = format!("{STUDENT}.");
        let params = parameters(vars)
            .into_iter()
            .filter(|(n, _)| n.starts_with(&student))
            .collect();
        groups_by_name(params, weight_decay, &["bn", "bias"])
    }

    fn state(&self) -> Vec<(String, Tensor)> {
        self.queue.borrow().state("queue")
    }

    fn restore(&self, saved: &HashMap<String, Tensor>) -> Result<()> {
        *self.queue.borrow_mut() = FeatureQueue::restore(saved, "queue")
            .map_err(|e| EmberError::bad_input(e.to_string()))?;
        Ok(())
    }

    fn backbone(&self) -> &dyn Classifier {
        self.student.as_ref()
    }

    fn backbone_prefix(&self) -> &str {
        BACKBONE
    }
}
