//! SGD (momentum, Nesterov, weight decay), AdamW (decoupled weight decay) and LARS (LEWEL's
//! `utils/LARS.py`) with parameter groups and state that can be saved and restored,
//! following `torch.optim.SGD`, `torch.optim.AdamW` and the official LARS step for step. candle-nn's `SGD` has no momentum or weight decay,
//! and its `AdamW` decays every parameter and keeps its state private.

use std::collections::HashMap;

use candle_core::backprop::GradStore;
use candle_core::{DType, Result, Tensor, Var};

use crate::precision::{needs_master, LossScaler};

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Method {
    Sgd {
        momentum: f64,
        nesterov: bool,
    },
    AdamW {
        beta1: f64,
        beta2: f64,
        eps: f64,
    },
    /// `torch.optim.Adam`: weight decay as an L2 term added to the gradient (coupled), not
    /// decoupled as in AdamW.
    Adam {
        beta1: f64,
        beta2: f64,
        eps: f64,
    },
    /// Layer-wise adaptive rate scaling as LEWEL's code has it: for a group with `trust`,
    /// `d = (g + wd w) * lr * eta ||w|| / (||g|| + wd ||w||)` (the ratio 1 when either norm
    /// is 0), `buf = momentum buf + d`, `w -= buf`: the rate sits inside the momentum
    /// buffer. Groups without `trust` take `d = g * lr` (plain SGD, no weight decay).
    Lars {
        momentum: f64,
        eta: f64,
    },
}

/// Parameters sharing one weight decay.
pub struct ParamGroup {
    pub params: Vec<(String, Var)>,
    pub weight_decay: f64,
    /// LARS scales this group's steps by its trust ratio (other methods ignore it).
    pub trust: bool,
}

/// timm's default split: no weight decay on biases, norm parameters and any other 1-d (or
/// scalar) parameter, nor on parameters whose name contains one of `exempt` (a model's
/// `no_weight_decay()`: LightViT's global tokens and relative position tables).
pub fn default_groups(
    params: Vec<(String, Var)>,
    weight_decay: f64,
    exempt: &[&str],
) -> Vec<ParamGroup> {
    let (no_decay, decay): (Vec<_>, Vec<_>) = params
        .into_iter()
        .partition(|(name, v)| v.rank() <= 1 || exempt.iter().any(|e| name.contains(e)));
    decay_split(decay, no_decay, weight_decay)
}

/// A decayed group (with LARS's trust ratio) and an exempt one.
fn decay_split(
    decay: Vec<(String, Var)>,
    no_decay: Vec<(String, Var)>,
    weight_decay: f64,
) -> Vec<ParamGroup> {
    vec![
        ParamGroup {
            params: decay,
            weight_decay,
            trust: true,
        },
        ParamGroup {
            params: no_decay,
            weight_decay: 0.0,
            trust: false,
        },
    ]
}

/// The split of the official self-supervised code: no weight decay (and no LARS trust
/// ratio) for parameters whose name contains one of `exempt` (ReSSL: "bn" and "bias", which
/// leaves torchvision's `downsample.1.weight` decayed).
pub fn groups_by_name(
    params: Vec<(String, Var)>,
    weight_decay: f64,
    exempt: &[&str],
) -> Vec<ParamGroup> {
    let (no_decay, decay): (Vec<_>, Vec<_>) = params
        .into_iter()
        .partition(|(name, _)| exempt.iter().any(|e| name.contains(e)));
    decay_split(decay, no_decay, weight_decay)
}

/// Where the master copies and the loss scale ride among the optimizer's state tensors.
const MASTER: &str = "master/";
const LOSS_SCALE: &str = "loss_scale";

pub struct Optimizer {
    method: Method,
    groups: Vec<ParamGroup>,
    lr: f64,
    /// Steps taken (AdamW's bias correction needs it).
    steps: u64,
    /// Per parameter name: SGD's momentum buffer, or AdamW's first and second moments.
    state: HashMap<String, Vec<Tensor>>,
    /// f32 master copies of the bf16/f16 parameters (see `precision`), made at their first step.
    masters: HashMap<String, Tensor>,
    /// The loss scale when some parameter is f16.
    scaler: Option<LossScaler>,
}

impl Optimizer {
    pub fn new(method: Method, groups: Vec<ParamGroup>, lr: f64) -> Self {
        let f16 = groups
            .iter()
            .flat_map(|g| g.params.iter())
            .any(|(_, v)| v.dtype() == DType::F16);
        Self {
            method,
            groups,
            lr,
            steps: 0,
            state: HashMap::new(),
            masters: HashMap::new(),
            scaler: f16.then(LossScaler::default),
        }
    }

    /// The gradients of `loss` for a step: a plain backward pass, or with f16 parameters a
    /// loss-scaled one whose gradients come back unscaled in f32, `None` when they overflowed
    /// (skip the step; the scale has been lowered). In a data-parallel run the gradients are
    /// averaged over the ranks first, so every rank takes the same step (and, with f16, the
    /// same decision to skip it).
    pub fn backward(&mut self, loss: &Tensor) -> Result<Option<GradStore>> {
        let params = || {
            self.groups
                .iter()
                .flat_map(|g| g.params.iter().map(|(_, v)| v))
        };
        let mut grads = match &self.scaler {
            Some(scaler) => scaler.scaled(loss)?.backward()?,
            None => loss.backward()?,
        };
        if let Some(group) = crate::dist::group() {
            crate::dist::average_gradients(group, &mut grads, params())?;
        }
        match &mut self.scaler {
            Some(scaler) => scaler.unscale(grads, params()),
            None => Ok(Some(grads)),
        }
    }

    /// The current loss scale (f16 parameters only).
    pub fn loss_scale(&self) -> Option<f64> {
        self.scaler.as_ref().map(|s| s.scale)
    }

    pub fn lr(&self) -> f64 {
        self.lr
    }

    pub fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
    }

    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// Replaces the parameter groups after the model's structure changed: state is kept for
    /// parameters whose names survive (a rewritten kernel keeps its momentum, as the
    /// official DyRep keeps the same `Parameter`) and dropped for the others; new ones start
    /// without state.
    pub fn regroup(&mut self, groups: Vec<ParamGroup>) {
        let names: std::collections::HashSet<&str> = groups
            .iter()
            .flat_map(|g| g.params.iter().map(|(n, _)| n.as_str()))
            .collect();
        self.state.retain(|name, _| names.contains(name.as_str()));
        self.masters.retain(|name, _| names.contains(name.as_str()));
        self.groups = groups;
    }

    /// Every parameter the optimizer updates.
    pub fn params(&self) -> impl Iterator<Item = &(String, Var)> {
        self.groups.iter().flat_map(|g| g.params.iter())
    }

    /// One update from `grads`; parameters without a gradient are left alone.
    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        self.steps += 1;
        let t = self.steps as i32;
        for group in &self.groups {
            for (name, var) in &group.params {
                let Some(g) = grads.get(var) else { continue };
                #[cfg(feature = "cuda")]
                if var.device().is_cuda() {
                    let slots = (&mut self.state, &mut self.masters);
                    let step = (self.method, self.lr, group.weight_decay, t);
                    if fused_step(slots, name, var, g, step)? {
                        continue;
                    }
                }
                // Detached: arithmetic on a variable records a graph, and a moment buffer
                // computed from it would keep every earlier step's graph alive (a leak of
                // several parameter copies per step).
                let g = g.detach().to_dtype(DType::F32)?;
                let w = match self.masters.get(name) {
                    Some(master) => master.clone(),
                    None => var.as_tensor().detach().to_dtype(DType::F32)?,
                };
                let updated = match self.method {
                    Method::Sgd { momentum, nesterov } => {
                        let d = if group.weight_decay != 0.0 {
                            (&g + (&w * group.weight_decay)?)?
                        } else {
                            g
                        };
                        let d = if momentum != 0.0 {
                            let buf = match self.state.get(name) {
                                Some(s) => ((&s[0] * momentum)? + &d)?,
                                None => d.clone(),
                            };
                            self.state.insert(name.clone(), vec![buf.clone()]);
                            if nesterov {
                                (d + (buf * momentum)?)?
                            } else {
                                buf
                            }
                        } else {
                            d
                        };
                        (w - (d * self.lr)?)?
                    }
                    Method::AdamW { beta1, beta2, eps } | Method::Adam { beta1, beta2, eps } => {
                        let coupled = matches!(self.method, Method::Adam { .. });
                        let wd = group.weight_decay;
                        let (w, g) = match (coupled, wd != 0.0) {
                            (true, true) => (w.clone(), (&g + (&w * wd)?)?),
                            (false, true) => ((w * (1.0 - self.lr * wd))?, g),
                            (_, false) => (w, g),
                        };
                        let (m, v) = match self.state.get(name) {
                            Some(s) => (s[0].clone(), s[1].clone()),
                            None => (g.zeros_like()?, g.zeros_like()?),
                        };
                        let m = ((m * beta1)? + (&g * (1.0 - beta1))?)?;
                        let v = ((v * beta2)? + (g.sqr()? * (1.0 - beta2))?)?;
                        let bc1 = 1.0 - beta1.powi(t);
                        let bc2 = 1.0 - beta2.powi(t);
                        let denom = ((v.sqrt()? / bc2.sqrt())? + eps)?;
                        let step = ((&m / bc1)? / denom)?;
                        self.state.insert(name.clone(), vec![m, v]);
                        (w - (step * self.lr)?)?
                    }
                    Method::Lars { momentum, eta } => {
                        let d = if group.trust {
                            let wd = group.weight_decay;
                            let norm = |t: &Tensor| -> Result<f64> {
                                t.sqr()?
                                    .sum_all()?
                                    .sqrt()?
                                    .to_dtype(DType::F64)?
                                    .to_scalar()
                            };
                            let (wn, gn) = (norm(&w)?, norm(&g)?);
                            let ratio = if wn > 0.0 && gn > 0.0 {
                                eta * wn / (gn + wd * wn)
                            } else {
                                1.0
                            };
                            ((&g + (&w * wd)?)? * (ratio * self.lr))?
                        } else {
                            (&g * self.lr)?
                        };
                        let buf = match self.state.get(name) {
                            Some(s) => ((&s[0] * momentum)? + d)?,
                            None => d,
                        };
                        self.state.insert(name.clone(), vec![buf.clone()]);
                        (w - buf)?
                    }
                };
                if needs_master(var.dtype()) {
                    self.masters.insert(name.clone(), updated.clone());
                }
                var.set(&updated.to_dtype(var.dtype())?)?;
            }
        }
        Ok(())
    }

    /// The state as named tensors (`<prefix><slot>/<param>`) for a checkpoint.
    pub fn state_tensors(&self, prefix: &str) -> Vec<(String, Tensor)> {
        let mut out: Vec<(String, Tensor)> = self
            .state
            .iter()
            .flat_map(|(name, slots)| {
                slots
                    .iter()
                    .enumerate()
                    .map(move |(i, t)| (format!("{prefix}{i}/{name}"), t.clone()))
            })
            .chain(
                self.masters
                    .iter()
                    .map(|(name, t)| (format!("{prefix}{MASTER}{name}"), t.clone())),
            )
            .collect();
        if let Some(s) = &self.scaler {
            let saved = [s.scale, s.clean_steps as f64];
            if let Ok(t) = Tensor::new(&saved, &candle_core::Device::Cpu) {
                out.push((format!("{prefix}{LOSS_SCALE}"), t));
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Restores what `state_tensors` saved, after `steps` steps. A parameter without saved
    /// state starts without it (one that appeared when the model's structure changed); a
    /// checkpoint with no state at all after some steps is refused.
    pub fn load_state(
        &mut self,
        prefix: &str,
        tensors: &HashMap<String, Tensor>,
        steps: u64,
    ) -> Result<()> {
        self.steps = steps;
        self.state.clear();
        self.masters.clear();
        for (name, var) in self.groups.iter().flat_map(|g| g.params.iter()) {
            if let Some(m) = tensors.get(&format!("{prefix}{MASTER}{name}")) {
                if m.dims() != var.dims() {
                    candle_core::bail!("the checkpoint's master copy of {name} has another shape")
                }
                let m = m.to_dtype(DType::F32)?.to_device(var.device())?;
                self.masters.insert(name.clone(), m);
            }
        }
        if let (Some(s), Some(t)) = (
            &mut self.scaler,
            tensors.get(&format!("{prefix}{LOSS_SCALE}")),
        ) {
            let saved = t.to_dtype(DType::F64)?.to_vec1::<f64>()?;
            if let [scale, clean] = saved[..] {
                s.scale = scale;
                s.clean_steps = clean as u64;
            }
        }
        let slots = match self.method {
            Method::Sgd { momentum: 0.0, .. } => 0,
            Method::Sgd { .. } | Method::Lars { .. } => 1,
            Method::AdamW { .. } | Method::Adam { .. } => 2,
        };
        if steps == 0 {
            return Ok(());
        }
        if slots == 0 {
            return Ok(());
        }
        for (name, var) in self.groups.iter().flat_map(|g| g.params.iter()) {
            let saved: Option<Vec<Tensor>> = (0..slots)
                .map(|i| tensors.get(&format!("{prefix}{i}/{name}")).cloned())
                .collect();
            let Some(saved) = saved else { continue };
            if saved.iter().any(|t| t.dims() != var.dims()) {
                candle_core::bail!("the checkpoint's optimizer state for {name} has another shape")
            }
            let saved = saved
                .into_iter()
                .map(|t| t.to_dtype(DType::F32)?.to_device(var.device()))
                .collect::<Result<Vec<_>>>()?;
            self.state.insert(name.clone(), saved);
        }
        if self.state.is_empty() && self.params().next().is_some() {
            candle_core::bail!("the checkpoint holds no optimizer state")
        }
        Ok(())
    }
}

/// One AdamW or SGD step of `var` on CUDA in a single kernel (`ember_ops::cuda::optimizer`),
/// on the same state the composed path keeps: the moments or the momentum buffer, and the
/// f32 master of a bf16/f16 variable (an f32 variable is updated in place, as `Var::set`
/// would). False for the methods without a kernel (Adam, LARS), which take the composed path.
#[cfg(feature = "cuda")]
fn fused_step(
    (state, masters): (
        &mut HashMap<String, Vec<Tensor>>,
        &mut HashMap<String, Tensor>,
    ),
    name: &str,
    var: &Var,
    g: &Tensor,
    (method, lr, weight_decay, step): (Method, f64, f64, i32),
) -> Result<bool> {
    use ember_ops::cuda::optimizer::{adamw_cuda, sgd_cuda, AdamWStep, SgdStep};
    if !matches!(method, Method::AdamW { .. } | Method::Sgd { .. }) {
        return Ok(false);
    }
    let g = g.detach().to_dtype(DType::F32)?.contiguous()?;
    // Fresh allocations: the kernels write the state in place.
    let zeros = || Tensor::zeros(var.shape(), DType::F32, var.device());
    let half = needs_master(var.dtype());
    let w = match (half, masters.get(name)) {
        (true, Some(master)) => master.clone(),
        (true, None) => var.as_tensor().detach().to_dtype(DType::F32)?,
        (false, _) => var.as_tensor().clone(),
    };
    let work = half.then(|| var.as_tensor());
    let slots = match method {
        Method::AdamW { beta1, beta2, eps } => {
            let slots = match state.get(name) {
                Some(s) => s.clone(),
                None => vec![zeros()?, zeros()?],
            };
            let settings = AdamWStep {
                lr,
                beta1,
                beta2,
                eps,
                weight_decay,
                step,
            };
            adamw_cuda(&w, &g, &slots[0], &slots[1], work, &settings)?;
            Some(slots)
        }
        Method::Sgd { momentum, nesterov } => {
            let old = state.get(name).cloned();
            let slots = match (&old, momentum != 0.0) {
                (_, false) => None,
                (Some(s), true) => Some(s.clone()),
                (None, true) => Some(vec![zeros()?]),
            };
            let settings = SgdStep {
                lr,
                momentum,
                nesterov,
                weight_decay,
                first: old.is_none(),
            };
            let buf = slots.as_ref().map(|s| &s[0]);
            sgd_cuda(&w, &g, buf, work, &settings)?;
            slots
        }
        _ => unreachable!("only AdamW and SGD reach the kernels"),
    };
    if half {
        masters.insert(name.to_string(), w);
    }
    if let Some(slots) = slots {
        state.insert(name.to_string(), slots);
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn quadratic_step(opt: &mut Optimizer, w: &Var) {
        // loss = sum(w^2) / 2, so grad = w
        let loss = (w.as_tensor().sqr().unwrap().sum_all().unwrap() * 0.5).unwrap();
        opt.step(&loss.backward().unwrap()).unwrap();
    }

    fn values(w: &Var) -> Vec<f32> {
        w.as_tensor().to_vec1().unwrap()
    }

    /// `w` alone in a parameter group.
    fn one_group(w: &Var, weight_decay: f64, trust: bool) -> Vec<ParamGroup> {
        vec![ParamGroup {
            params: vec![("w".into(), w.clone())],
            weight_decay,
            trust,
        }]
    }

    fn assert_values(w: &Var, expected: &[f32]) {
        for (a, b) in values(w).iter().zip(expected) {
            assert!((a - b).abs() < 1e-6, "{a} vs {b}");
        }
    }

    #[test]
    fn sgd_matches_torch_formulas() {
        // torch.optim.SGD([w], lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01),
        // w0 = [1, -2], grad = w: step 1 d = 1.01 w0, buf = d, w1 = w0 - 0.1 (d + 0.9 d).
        let w = Var::new(&[1f32, -2.], &Device::Cpu).unwrap();
        let groups = one_group(&w, 0.01, true);
        let mut opt = Optimizer::new(
            Method::Sgd {
                momentum: 0.9,
                nesterov: true,
            },
            groups,
            0.1,
        );
        quadratic_step(&mut opt, &w);
        let w1: Vec<f32> = [1f32, -2.]
            .iter()
            .map(|&x| x - 0.1 * (1.01 * x * 1.9))
            .collect();
        assert_values(&w, &w1);
        // step 2: d = 1.01 w1, buf = 0.9 buf + d, w2 = w1 - 0.1 (d + 0.9 buf)
        quadratic_step(&mut opt, &w);
        let w2: Vec<f32> = [1f32, -2.]
            .iter()
            .zip(&w1)
            .map(|(&x0, &x1)| {
                let buf = 0.9 * 1.01 * x0 + 1.01 * x1;
                x1 - 0.1 * (1.01 * x1 + 0.9 * buf)
            })
            .collect();
        assert_values(&w, &w2);
    }

    #[test]
    fn lars_scales_by_the_trust_ratio_and_keeps_the_rate_in_the_buffer() {
        // w = [3, 4] (norm 5), grad = w (norm 5), wd 0.1, eta 0.001, lr 2:
        // ratio = 0.001 * 5 / (5 + 0.5), d = 1.1 w * 2 * ratio = w * 0.002, buf = d.
        let w = Var::new(&[3f32, 4.], &Device::Cpu).unwrap();
        let b = Var::new(&[1f32], &Device::Cpu).unwrap();
        let groups = vec![
            ParamGroup {
                params: vec![("w".into(), w.clone())],
                weight_decay: 0.1,
                trust: true,
            },
            ParamGroup {
                params: vec![("b".into(), b.clone())],
                weight_decay: 0.0,
                trust: false,
            },
        ];
        let method = Method::Lars {
            momentum: 0.9,
            eta: 0.001,
        };
        let mut opt = Optimizer::new(method, groups, 2.0);
        let loss = ((w.as_tensor().sqr().unwrap().sum_all().unwrap() * 0.5).unwrap()
            + b.as_tensor().sum_all().unwrap())
        .unwrap();
        opt.step(&loss.backward().unwrap()).unwrap();
        let got = values(&w);
        assert!(
            (got[0] - 2.994).abs() < 1e-6 && (got[1] - 3.992).abs() < 1e-6,
            "{got:?}"
        );
        // The exempt bias: plain SGD at the full rate, grad 1.
        assert!((values(&b)[0] - -1.0).abs() < 1e-6);
        // Second step on the bias: buf = 0.9 * 2 + 2 = 3.8.
        let loss = b.as_tensor().sum_all().unwrap();
        opt.step(&loss.backward().unwrap()).unwrap();
        assert!((values(&b)[0] - -4.8).abs() < 1e-6);
    }

    #[test]
    fn adamw_first_step_moves_by_lr_and_decays_decoupled() {
        // First AdamW step: m/bc1 = g, sqrt(v/bc2) = |g|, so w1 = w0 (1 - lr wd) - lr sign(g).
        let w = Var::new(&[0.5f32, -3.], &Device::Cpu).unwrap();
        let groups = one_group(&w, 0.1, true);
        let mut opt = Optimizer::new(
            Method::AdamW {
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
            },
            groups,
            0.01,
        );
        quadratic_step(&mut opt, &w);
        let expected = [0.5 * (1.0 - 0.001) - 0.01, -3.0 * (1.0 - 0.001) + 0.01];
        assert_values(&w, &expected);
    }

    #[test]
    fn adam_adds_weight_decay_to_the_gradient() {
        // loss = c . w with c = -wd w0: the coupled gradient c + wd w0 is zero, so Adam
        // stays put where AdamW would shrink w.
        let w = Var::new(&[1f32, -2.], &Device::Cpu).unwrap();
        let groups = one_group(&w, 0.5, false);
        let method = Method::Adam {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        };
        let mut opt = Optimizer::new(method, groups, 0.1);
        let c = Tensor::new(&[-0.5f32, 1.0], &Device::Cpu).unwrap();
        let loss = (w.as_tensor() * c).unwrap().sum_all().unwrap();
        opt.step(&loss.backward().unwrap()).unwrap();
        assert_eq!(values(&w), vec![1.0, -2.0]);
    }

    #[test]
    fn state_round_trips_so_a_resumed_run_takes_the_same_steps() {
        let method = Method::AdamW {
            beta1: 0.9,
            beta2: 0.99,
            eps: 1e-8,
        };
        let run = |split: bool| {
            let w = Var::new(&[1f32, 2., -1.], &Device::Cpu).unwrap();
            let group = || one_group(&w, 0.05, true);
            let mut opt = Optimizer::new(method, group(), 0.1);
            for _ in 0..3 {
                quadratic_step(&mut opt, &w);
            }
            if split {
                let saved: HashMap<String, Tensor> =
                    opt.state_tensors("@train/adam/").into_iter().collect();
                opt = Optimizer::new(method, group(), 0.1);
                opt.load_state("@train/adam/", &saved, 3).unwrap();
            }
            for _ in 0..3 {
                quadratic_step(&mut opt, &w);
            }
            values(&w)
        };
        assert_eq!(run(false), run(true));
    }

    #[test]
    fn saved_state_records_no_graph() {
        // A moment buffer that records ops would keep every earlier step's graph alive.
        for method in [
            Method::Sgd {
                momentum: 0.9,
                nesterov: false,
            },
            Method::AdamW {
                beta1: 0.9,
                beta2: 0.99,
                eps: 1e-8,
            },
        ] {
            let w = Var::new(&[1f32, 2.], &Device::Cpu).unwrap();
            let groups = one_group(&w, 0.1, true);
            let mut opt = Optimizer::new(method, groups, 0.1);
            quadratic_step(&mut opt, &w);
            quadratic_step(&mut opt, &w);
            for (name, t) in opt.state_tensors("") {
                assert!(!t.track_op(), "{method:?}: {name} carries a graph");
            }
        }
    }

    #[test]
    fn default_groups_exempt_one_dimensional_parameters() {
        let w = Var::new(&[[1f32, 2.]], &Device::Cpu).unwrap();
        let b = Var::new(&[1f32], &Device::Cpu).unwrap();
        let groups = default_groups(
            vec![("fc.weight".into(), w), ("fc.bias".into(), b)],
            5e-4,
            &[],
        );
        assert_eq!(groups[0].params[0].0, "fc.weight");
        assert_eq!(groups[0].weight_decay, 5e-4);
        assert_eq!(groups[1].params[0].0, "fc.bias");
        assert_eq!(groups[1].weight_decay, 0.0);

        let t = Var::new(&[[[1f32, 2.]]], &Device::Cpu).unwrap();
        let named = |n: &str| (n.to_string(), t.clone());
        let groups = default_groups(
            vec![
                named("global_token"),
                named("stages.0.0.attn.relative_position_bias_table"),
            ],
            0.04,
            &["global_token", "relative_position_bias_table"],
        );
        assert!(groups[0].params.is_empty());
        assert_eq!(groups[1].params.len(), 2);
    }

    #[test]
    fn bf16_parameters_step_through_f32_master_copies() -> Result<()> {
        // SGD lr 1e-4 on loss = w (gradient 1): 100 steps take w from 1 to 0.99, each step
        // far below bf16's spacing at 1 (2^-8), which a bf16 weight alone would round away.
        let w = Var::from_tensor(&Tensor::new(&[1f32], &Device::Cpu)?.to_dtype(DType::BF16)?)?;
        let sgd = |w: &Var| {
            let groups = one_group(w, 0.0, true);
            let plain = Method::Sgd {
                momentum: 0.0,
                nesterov: false,
            };
            Optimizer::new(plain, groups, 1e-4)
        };
        let step = |opt: &mut Optimizer, w: &Var| -> Result<()> {
            let loss = w.as_tensor().to_dtype(DType::F32)?.sum_all()?;
            let grads = opt.backward(&loss)?.expect("bf16 needs no loss scale");
            opt.step(&grads)
        };
        let mut opt = sgd(&w);
        for _ in 0..100 {
            step(&mut opt, &w)?;
        }
        let value = w.as_tensor().to_dtype(DType::F32)?.to_vec1::<f32>()?[0];
        assert!((value - 0.99).abs() <= 1.0 / 256.0, "{value}");
        // The master copy rides in the state, and a resumed optimizer continues from it.
        let saved: HashMap<String, Tensor> = opt.state_tensors("o/").into_iter().collect();
        let master = |opt: &Optimizer| -> Result<f32> {
            let state: HashMap<String, Tensor> = opt.state_tensors("o/").into_iter().collect();
            Ok(state["o/master/w"].to_vec1::<f32>()?[0])
        };
        assert!((master(&opt)? - 0.99).abs() < 1e-5);
        let mut resumed = sgd(&w);
        resumed.load_state("o/", &saved, 100)?;
        step(&mut opt, &w)?;
        step(&mut resumed, &w)?;
        assert_eq!(master(&opt)?, master(&resumed)?);
        Ok(())
    }

    #[test]
    fn f16_parameters_get_a_loss_scale_that_survives_a_resume() -> Result<()> {
        let w = Var::from_tensor(&Tensor::new(&[0.5f32], &Device::Cpu)?.to_dtype(DType::F16)?)?;
        let adamw = |w: &Var| {
            let groups = one_group(w, 0.0, true);
            let method = Method::AdamW {
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
            };
            Optimizer::new(method, groups, 1e-3)
        };
        let mut opt = adamw(&w);
        assert_eq!(opt.loss_scale(), Some(65536.0));
        // d(1e6 w)/dw = 1e6, times 2^16 overflows f16: skipped, the scale halves.
        let huge = (w.as_tensor().to_dtype(DType::F32)?.sum_all()? * 1e6)?;
        assert!(opt.backward(&huge)?.is_none());
        assert_eq!(opt.loss_scale(), Some(32768.0));
        let small = w.as_tensor().to_dtype(DType::F32)?.sum_all()?;
        let grads = opt.backward(&small)?.expect("2^15 fits f16");
        opt.step(&grads)?;
        let saved: HashMap<String, Tensor> = opt.state_tensors("o/").into_iter().collect();
        let mut resumed = adamw(&w);
        resumed.load_state("o/", &saved, 1)?;
        assert_eq!(resumed.loss_scale(), Some(32768.0));
        assert!(adamw(&Var::new(&[0.5f32], &Device::Cpu)?)
            .loss_scale()
            .is_none());
        Ok(())
    }
}
