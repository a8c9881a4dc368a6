//! LEWEL as `models/lewel.py` (`LEWELB_EMAN`, or `LEWELB` with `--target-norm batch`) runs
//! it, on any registered backbone, and its bases alone. Both views go through the online
//! network (training mode) and the momentum target (evaluation mode on averaged statistics
//! under EMAN); the neck's `proj` gives the global
//! embedding and the alignment maps, `proj_obj` the aligned embeddings. The loss of each
//! direction (view i online against view j target) is `w * global + (1 - w) * aligned`, the
//! two directions summed:
//!
//! - BYOL base (the released code): predictors on the online side, normalised MSE.
//! - MoCo base (LEWEL_M, not released): InfoNCE against queues of target embeddings, one for
//!   global and one for aligned embeddings. Our choices where the paper's code is missing:
//!   both directions (as the BYOL form), both views' keys enqueued, and the aligned queue
//!   takes each step the embeddings of one map index per image (cycling through the maps)
//!   so a batch adds as many entries as the global queue gets.
//!
//! Without alignment (`--no-align`) the neck's `proj` sees only the pooled feature: plain
//! BYOL or MoCo (with EMAN and a BN projector), the baselines.

use std::cell::RefCell;
use std::collections::HashMap;

use candle_core::{ModuleT, Tensor};
use ember_cli::pretrain::Build;
use ember_core::{EmberError, EmberRng, Result, SeededVarMap};
use ember_losses::{as_rows, infonce, lewel_pair, normalized_mse};
use ember_models::ssl::{Mlp1d, NeckOutput, ObjectNeck};
use ember_models::Classifier;
use ember_ops::l2_normalize;
use ember_train::optim::{groups_by_name, ParamGroup};
use ember_train::trainer::parameters;
use ember_train::{
    cosine_momentum, dist, FeatureQueue, MomentumEncoder, MomentumScope, Pretext, StepLoss,
};

pub const ONLINE: &str = "online_net";
pub const TARGET: &str = "target_net";
pub const BACKBONE: &str = "online_net.backbone";

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Base {
    Byol,
    Moco,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LewelSettings {
    pub base: Base,
    /// LEWEL's alignment (false: the base alone).
    pub align: bool,
    pub dim: usize,
    pub hidden: usize,
    pub heads: usize,
    pub scale: f64,
    /// `w`: the global term's weight.
    pub loss_weight: f64,
    /// The first step's target momentum (cosine to 1 over the run).
    pub base_momentum: f64,
    pub total_steps: usize,
    /// MoCo: InfoNCE temperature and queue length.
    pub tau: f64,
    pub queue: usize,
    /// EMAN (`LEWELB_EMAN`): the target runs in evaluation mode and its BN statistics are
    /// averaged too; otherwise (`LEWELB`, the SyncBN recipe) it runs in training mode and
    /// only its parameters are averaged.
    pub eman: bool,
}

/// The MoCo base's memory: global keys, and aligned keys when LEWEL aligns.
struct Queues {
    global: FeatureQueue,
    aligned: Option<FeatureQueue>,
}

pub struct Lewel {
    online: Box<dyn Classifier>,
    target: Box<dyn Classifier>,
    online_neck: ObjectNeck,
    target_neck: ObjectNeck,
    predictors: Option<(Mlp1d, Mlp1d)>,
    ema: MomentumEncoder,
    queues: Option<RefCell<Queues>>,
    cfg: LewelSettings,
}

/// What one view gives: the global embedding `[n, d, 1]` and, with alignment, the aligned
/// ones `[n, d, k]`.
struct Embedded {
    global: Tensor,
    objects: Option<Tensor>,
}

impl Lewel {
    pub fn new(b: &Build, cfg: LewelSettings) -> Result<Self> {
        let online = b.backbone(BACKBONE)?;
        let target = b.backbone(&format!("{TARGET}.backbone"))?;
        let (_, channels) = b.widths(online.as_ref())?;
        let vb = b.vars.var_builder(b.dtype, b.device);
        let neck = |net: &str| {
            ObjectNeck::new(
                vb.pp(net).pp("neck"),
                channels,
                cfg.hidden,
                cfg.dim,
                cfg.heads,
                cfg.scale,
            )
            .map_err(|e| EmberError::bad_input(e.to_string()))
        };
        let (online_neck, target_neck) = (neck(ONLINE)?, neck(TARGET)?);
        let predictors = match cfg.base {
            Base::Byol => Some((
                Mlp1d::new(vb.pp("predictor"), cfg.dim, cfg.hidden, cfg.dim)?,
                Mlp1d::new(vb.pp("predictor_obj"), cfg.dim, cfg.hidden, cfg.dim)?,
            )),
            Base::Moco => None,
        };
        let scope = if cfg.eman {
            MomentumScope::State
        } else {
            MomentumScope::Parameters
        };
        let ema = MomentumEncoder::pair(&b.vars.named(), ONLINE, TARGET, scope)?;
        ema.copy_online()?;
        let queues = match cfg.base {
            Base::Moco => {
                if cfg.queue < 2 * b.batch_size {
                    return Err(EmberError::bad_input(format!(
                        "--queue {} is smaller than the two views of a batch ({})",
                        cfg.queue,
                        2 * b.batch_size
                    )));
                }
                let mut rng = EmberRng::for_name(b.seed, "lewel/queue");
                Some(RefCell::new(Queues {
                    global: FeatureQueue::random(cfg.dim, cfg.queue, &mut rng, b.device)?,
                    aligned: match cfg.align {
                        true => Some(FeatureQueue::random(
                            cfg.dim, cfg.queue, &mut rng, b.device,
                        )?),
                        false => None,
                    },
                }))
            }
            Base::Byol => None,
        };
        Ok(Self {
            online,
            target,
            online_neck,
            target_neck,
            predictors,
            ema,
            queues,
            cfg,
        })
    }

    fn embed(
        &self,
        neck: &ObjectNeck,
        net: &dyn Classifier,
        x: &Tensor,
        train: bool,
    ) -> Result<Embedded> {
        let map = net.feature_map(x, train)?;
        Ok(if self.cfg.align {
            let NeckOutput {
                global, objects, ..
            } = neck.forward_t(&map, train)?;
            Embedded {
                global,
                objects: Some(objects),
            }
        } else {
            Embedded {
                global: neck.global_t(&map, train)?,
                objects: None,
            }
        })
    }

    /// One direction's loss: online embedding `o` against target embedding `t`; returns
    /// (global term, aligned term if any, weighted total).
    fn direction(&self, o: &Embedded, t: &Embedded) -> Result<(Tensor, Option<Tensor>, Tensor)> {
        let w = self.cfg.loss_weight;
        match (&self.predictors, &self.queues) {
            (Some((pred, pred_obj)), _) => {
                let p = pred.forward_t(&o.global, true)?;
                match (&o.objects, &t.objects) {
                    (Some(oo), Some(to)) => {
                        let po = pred_obj.forward_t(oo, true)?;
                        let (inst, obj, total) = lewel_pair(&p, &t.global, &po, to, w)?;
                        Ok((inst, Some(obj), total))
                    }
                    _ => {
                        let inst = normalized_mse(&as_rows(&p)?, &as_rows(&t.global)?)?;
                        Ok((inst.clone(), None, inst))
                    }
                }
            }
            (None, Some(queues)) => {
                let queues = queues.borrow();
                let tau = self.cfg.tau;
                let (q, k) = (unit_rows(&o.global)?, unit_rows(&t.global)?);
                let inst = infonce(&q, &k, queues.global.entries(), tau)?;
                match (&o.objects, &t.objects, &queues.aligned) {
                    (Some(oo), Some(to), Some(aligned)) => {
                        let (qa, ka) = (unit_rows(oo)?, unit_rows(to)?);
                        let obj = infonce(&qa, &ka, aligned.entries(), tau)?;
                        let total = ((&inst * w)? + (&obj * (1.0 - w))?)?;
                        Ok((inst, Some(obj), total))
                    }
                    _ => Ok((inst.clone(), None, inst)),
                }
            }
            (None, None) => Err(EmberError::Runtime(
                "LEWEL has neither predictors nor queues".into(),
            )),
        }
    }
}

/// `[n, d, k]` embeddings as L2-normalised `[n * k, d]` rows.
fn unit_rows(x: &Tensor) -> Result<Tensor> {
    Ok(l2_normalize(&as_rows(x)?, 1)?)
}

impl Pretext for Lewel {
    fn loss(&self, views: &[Tensor], _labels: &[u32], step: usize) -> Result<StepLoss> {
        let [x1, x2] = views else {
            return Err(EmberError::Runtime("LEWEL needs two views".into()));
        };
        let online = [
            self.embed(&self.online_neck, self.online.as_ref(), x1, true)?,
            self.embed(&self.online_neck, self.online.as_ref(), x2, true)?,
        ];
        // No gradient through the target; under EMAN it runs in evaluation mode on its
        // averaged statistics.
        let target_train = !self.cfg.eman;
        let detach = |e: Embedded| Embedded {
            global: e.global.detach(),
            objects: e.objects.map(|o| o.detach()),
        };
        let target = [
            detach(self.embed(
                &self.target_neck,
                self.target.as_ref(),
                &x1.detach(),
                target_train,
            )?),
            detach(self.embed(
                &self.target_neck,
                self.target.as_ref(),
                &x2.detach(),
                target_train,
            )?),
        ];
        let (g12, a12, l12) = self.direction(&online[0], &target[1])?;
        let (g21, a21, l21) = self.direction(&online[1], &target[0])?;
        let mut parts = vec![("global", (g12 + g21)?)];
        if let (Some(a), Some(b)) = (a12, a21) {
            parts.push(("aligned", (a + b)?));
        }
        if let Some(queues) = &self.queues {
            let mut queues = queues.borrow_mut();
            // Every rank's keys enter the queue (MoCo's `concat_all_gather`).
            let keys = Tensor::cat(&[&target[0].global, &target[1].global], 0)?;
            queues
                .global
                .enqueue(&dist::all_gather(&unit_rows(&keys)?)?)?;
            if let (Some(o1), Some(o2)) = (&target[0].objects, &target[1].objects) {
                let k = o1.dim(2)?;
                let pick = |o: &Tensor| o.narrow(2, step % k, 1);
                let keys = Tensor::cat(&[&pick(o1)?, &pick(o2)?], 0)?;
                if let Some(aligned) = queues.aligned.as_mut() {
                    aligned.enqueue(&dist::all_gather(&unit_rows(&keys)?)?)?;
                }
            }
        }
        Ok(StepLoss {
            total: (l12 + l21)?,
            parts,
        })
    }

    /// The target follows after the optimizer step, with BYOL's cosine momentum schedule.
    fn after_step(&self, step: usize) -> Result<()> {
        let m = cosine_momentum(self.cfg.base_momentum, step, self.cfg.total_steps);
        Ok(self.ema.update(m)?)
    }

    /// The official split: no weight decay and no LARS trust ratio for names with "bn",
    /// "downsample.1" or "bias"; the neck and predictor BNs (`mlp.1`) join them only under
    /// EMAN (`main.py` adds them when the arch name contains "EMAN").
    fn groups(&self, vars: &SeededVarMap, weight_decay: f64) -> Vec<ParamGroup> {
        let trained = [format!("{ONLINE}."), "predictor".to_string()];
        let params = parameters(vars)
            .into_iter()
            .filter(|(n, _)| trained.iter().any(|p| n.starts_with(p.as_str())))
            .collect();
        let exempt: &[&str] = if self.cfg.eman {
            &["bn", "downsample.1", "bias", "mlp.1"]
        } else {
            &["bn", "downsample.1", "bias"]
        };
        groups_by_name(params, weight_decay, exempt)
    }

    fn state(&self) -> Vec<(String, Tensor)> {
        let Some(queues) = &self.queues else {
            return Vec::new();
        };
        let q = queues.borrow();
        let mut state = q.global.state("queue");
        if let Some(aligned) = &q.aligned {
            state.extend(aligned.state("queue_aligned"));
        }
        state
    }

    fn restore(&self, saved: &HashMap<String, Tensor>) -> Result<()> {
        let Some(queues) = &self.queues else {
            return Ok(());
        };
        let mut q = queues.borrow_mut();
        let bad = |e: candle_core::Error| EmberError::bad_input(e.to_string());
        q.global = FeatureQueue::restore(saved, "queue").map_err(bad)?;
        if q.aligned.is_some() {
            q.aligned = Some(FeatureQueue::restore(saved, "queue_aligned").map_err(bad)?);
        }
        Ok(())
    }

    fn backbone(&self) -> &dyn Classifier {
        self.online.as_ref()
    }

    fn backbone_prefix(&self) -> &str {
        BACKBONE
    }
}
