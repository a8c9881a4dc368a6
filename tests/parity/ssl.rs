//! ReSSL and LEWEL sections: the heads rebuilt from the weight shapes and loaded with the
//! official weights, one training-step forward on the fixture's backbone features, and every
//! intermediate, loss, gradient, BN buffer, momentum update and queue state compared. The
//! hyperparameters come from the section's `hyperparameters`.

use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Module, ModuleT, Tensor, Var};
use ember_core::SeededVarMap;
use ember_losses::{lewel_pair, relation_from_logits, relation_loss};
use ember_models::ssl::{Mlp1d, NeckOutput, ObjectNeck, ProjectionHead};
use ember_ops::l2_normalize;
use ember_train::{cosine_momentum, FeatureQueue, MomentumEncoder, MomentumScope};
use serde_json::Value;

use crate::compare::{err, get, Checks, Tensors, Tolerance};
use crate::Outcome;

fn f64_of(hp: &Value, key: &str) -> Result<f64, String> {
    hp[key].as_f64().ok_or(format!("manifest lacks `{key}`"))
}

fn dims(weights: &Tensors, name: &str) -> Result<Vec<usize>, String> {
    Ok(get(weights, name)?.dims().to_vec())
}

fn grad(grads: &GradStore, t: &Tensor, name: &str) -> Result<Tensor, String> {
    grads
        .get(t)
        .cloned()
        .ok_or(format!("no gradient reached {name}"))
}

/// Every io tensor named `{prefix}{var}` against our variable `var` (its value, or its
/// gradient when `grads` is given); BN step counters, which we do not keep, are skipped.
/// d f(x) / d x at `x`'s value.
fn grad_at(
    x: &Tensor,
    f: impl Fn(&Tensor) -> candle_core::Result<Tensor>,
) -> Result<Tensor, String> {
    let v = Var::from_tensor(&x.detach()).map_err(err)?;
    let grads = f(v.as_tensor()).and_then(|l| l.backward()).map_err(err)?;
    grad(&grads, v.as_tensor(), "the intermediate")
}

fn check_vars_under(
    c: &mut Checks,
    io: &Tensors,
    prefix: &str,
    vars: &SeededVarMap,
    grads: Option<&GradStore>,
) -> Result<usize, String> {
    let named = vars.named();
    let mut seen = 0;
    for (key, theirs) in io {
        let Some(var) = key.strip_prefix(prefix) else {
            continue;
        };
        if var.ends_with("num_batches_tracked") {
            continue;
        }
        let (_, v) = named
            .iter()
            .find(|(n, _)| n == var)
            .ok_or(format!("we have no variable `{var}`"))?;
        let ours = match grads {
            Some(g) => grad(g, v.as_tensor(), var)?,
            None => v.as_tensor().clone(),
        };
        c.check(key, &ours, theirs)?;
        seen += 1;
    }
    if seen == 0 {
        return Err(format!("the fixture has no `{prefix}*` tensors"));
    }
    Ok(seen)
}

fn load(vars: &SeededVarMap, weights: &Tensors, skip: &[&str]) -> Result<(), String> {
    let kept: Tensors = weights
        .iter()
        .filter(|(k, _)| !skip.contains(&k.as_str()))
        .map(|(k, t)| (k.clone(), t.clone()))
        .collect();
    ember_models::load_into(vars.vars(), &kept, "the fixture's weights").map_err(err)
}

pub fn ressl(
    spec: &Value,
    weights: &Tensors,
    io: &Tensors,
    tol: &Tolerance,
) -> Result<Outcome, String> {
    let hp = &spec["hyperparameters"];
    let (m, tau_s, tau_t) = (f64_of(hp, "m")?, f64_of(hp, "tau_s")?, f64_of(hp, "tau_t")?);
    let l1 = dims(weights, "encoder_q.head.linear1.weight")?;
    let dim = dims(weights, "encoder_q.head.linear2.weight")?[0];
    let (hidden, dim_in) = (l1[0], l1[1]);
    let dev = Device::Cpu;
    let vars = SeededVarMap::new(0);
    let vb = vars.var_builder(DType::F32, &dev);
    let head_q = ProjectionHead::new(vb.pp("encoder_q.head"), dim_in, hidden, dim).map_err(err)?;
    let head_k = ProjectionHead::new(vb.pp("encoder_k.head"), dim_in, hidden, dim).map_err(err)?;
    load(&vars, weights, &["queue", "queue_ptr"])?;
    let ptr = get(weights, "queue_ptr")?
        .flatten_all()
        .and_then(|t| t.to_vec1::<i64>())
        .map_err(err)?[0] as usize;
    let mut queue = FeatureQueue::new(get(weights, "queue")?.clone(), ptr).map_err(err)?;

    // ReSSL.forward's order: student, then the EMA, then the teacher on the updated weights.
    let feat_q = Var::from_tensor(get(io, "feat_q")?).map_err(err)?;
    let run = || -> candle_core::Result<_> {
        let proj = head_q.forward(feat_q.as_tensor())?;
        let q = l2_normalize(&proj, 1)?;
        MomentumEncoder::pair(
            &vars.named(),
            "encoder_q",
            "encoder_k",
            MomentumScope::Parameters,
        )?
        .update(m)?;
        let k = l2_normalize(
            &head_k.forward(get(io, "feat_k").map_err(candle_core::Error::msg)?)?,
            1,
        )?
        .detach();
        let r = relation_loss(&q, &k, queue.entries(), tau_s, tau_t)?;
        let grads = r.loss.backward()?;
        Ok((proj, q, k, r, grads))
    };
    let (proj, q, k, r, grads) = run().map_err(err)?;
    // candle keeps gradients of variables only: the gradient at an intermediate is the
    // gradient at a variable holding its value, with the rest of the step recomputed.
    let relation = |q: &Tensor| relation_loss(q, &k, queue.entries(), tau_s, tau_t).map(|r| r.loss);
    let grad_logits = grad_at(&r.logits_s, |l| {
        relation_from_logits(l, &r.logits_t, tau_s, tau_t).map(|r| r.loss)
    })?;
    let grad_q = grad_at(&q, relation)?;
    let grad_proj = grad_at(&proj, |p| relation(&l2_normalize(p, 1)?))?;
    let mut c = Checks { tol, worst: 0.0 };
    c.check("student_proj", &proj, get(io, "student_proj")?)?;
    c.check("student_emb", &q, get(io, "student_emb")?)?;
    c.check("teacher_emb", &k, get(io, "teacher_emb")?)?;
    c.check("logits_s", &r.logits_s, get(io, "logits_s")?)?;
    c.check("logits_t", &r.logits_t, get(io, "logits_t")?)?;
    c.check("p_t", &r.p_t, get(io, "p_t")?)?;
    c.check("log_p_s", &r.log_p_s, get(io, "log_p_s")?)?;
    c.check("loss", &r.loss, get(io, "loss")?)?;
    c.check("loss (against loss_f64)", &r.loss, get(io, "loss_f64")?)?;
    c.check("grad_logits_s", &grad_logits, get(io, "grad_logits_s")?)?;
    c.check("grad_student_emb", &grad_q, get(io, "grad_student_emb")?)?;
    c.check(
        "grad_student_proj",
        &grad_proj,
        get(io, "grad_student_proj")?,
    )?;
    c.check(
        "grad_feat_q",
        &grad(&grads, feat_q.as_tensor(), "feat_q")?,
        get(io, "grad_feat_q")?,
    )?;
    check_vars_under(&mut c, io, "grad.", &vars, Some(&grads))?;
    check_vars_under(&mut c, io, "ema_after.", &vars, None)?;
    queue.enqueue(&k).map_err(err)?;
    c.check("queue_after", queue.entries(), get(io, "queue_after")?)?;
    let ptr_after = Tensor::new(&[queue.ptr() as i64], &dev).map_err(err)?;
    c.check("queue_ptr_after", &ptr_after, get(io, "queue_ptr_after")?)?;
    Ok(Outcome::Ok(c.worst))
}

/// LEWEL's modules as the official `LEWELB(_EMAN)` names them.
struct Lewel {
    vars: SeededVarMap,
    online: ObjectNeck,
    target: ObjectNeck,
    predictor: Mlp1d,
    predictor_obj: Mlp1d,
}

impl Lewel {
    fn load(hp: &Value, weights: &Tensors) -> Result<Self, String> {
        let first = dims(weights, "online_net.neck.proj.mlp.0.weight")?;
        let (hidden, channels) = (first[0], first[1]);
        let dim = dims(weights, "online_net.neck.proj.mlp.3.weight")?[0];
        let pred_hidden = dims(weights, "predictor.mlp.0.weight")?[0];
        let heads = hp["num_heads"]
            .as_u64()
            .ok_or("manifest lacks `num_heads`")? as usize;
        let scale = f64_of(hp, "scale")?;
        let vars = SeededVarMap::new(0);
        let vb = vars.var_builder(DType::F32, &Device::Cpu);
        let neck =
            |net: &str| ObjectNeck::new(vb.pp(net).pp("neck"), channels, hidden, dim, heads, scale);
        let lewel = (|| -> candle_core::Result<Self> {
            Ok(Self {
                online: neck("online_net")?,
                target: neck("target_net")?,
                predictor: Mlp1d::new(vb.pp("predictor"), dim, pred_hidden, dim)?,
                predictor_obj: Mlp1d::new(vb.pp("predictor_obj"), dim, pred_hidden, dim)?,
                vars: vars.clone(),
            })
        })()
        .map_err(err)?;
        load(&vars, weights, &[])?;
        Ok(lewel)
    }
}

/// The official forward: the online net on each view (training mode), the target on each
/// view (no gradient), then both directions of the loss.
struct LewelStep {
    online: [NeckOutput; 2],
    target: [NeckOutput; 2],
    /// (global prediction, object prediction) for 1->2 and 2->1.
    preds: [(Tensor, Tensor); 2],
    /// (instance, object) terms for 1->2 and 2->1.
    terms: [(Tensor, Tensor); 2],
    loss: Tensor,
}

fn lewel_step(
    l: &Lewel,
    views: [&Tensor; 2],
    weight: f64,
    target_train: bool,
) -> candle_core::Result<LewelStep> {
    let online = [
        l.online.forward_t(views[0], true)?,
        l.online.forward_t(views[1], true)?,
    ];
    let target = [
        l.target.forward_t(&views[0].detach(), target_train)?,
        l.target.forward_t(&views[1].detach(), target_train)?,
    ];
    let mut preds = Vec::new();
    let mut terms = Vec::new();
    let mut loss: Option<Tensor> = None;
    for (i, j) in [(0, 1), (1, 0)] {
        let p = l.predictor.forward_t(&online[i].global, true)?;
        let po = l.predictor_obj.forward_t(&online[i].objects, true)?;
        let (inst, obj, total) = lewel_pair(
            &p,
            &target[j].global.detach(),
            &po,
            &target[j].objects.detach(),
            weight,
        )?;
        loss = Some(match loss {
            Some(s) => (s + total)?,
            None => total,
        });
        preds.push((p, po));
        terms.push((inst, obj));
    }
    let pair = |mut v: Vec<(Tensor, Tensor)>| -> [(Tensor, Tensor); 2] {
        let second = v.pop().expect("two directions");
        [v.pop().expect("two directions"), second]
    };
    Ok(LewelStep {
        online,
        target,
        preds: pair(preds),
        terms: pair(terms),
        loss: loss.expect("two directions"),
    })
}

pub fn lewel(
    spec: &Value,
    weights: &Tensors,
    io: &Tensors,
    tol: &Tolerance,
) -> Result<Outcome, String> {
    let hp = &spec["hyperparameters"];
    let weight = f64_of(hp, "loss_weight")?;
    let l = Lewel::load(hp, weights)?;
    let v1 = Var::from_tensor(get(io, "v1")?).map_err(err)?;
    let v2 = Var::from_tensor(get(io, "v2")?).map_err(err)?;
    let step = lewel_step(&l, [v1.as_tensor(), v2.as_tensor()], weight, false).map_err(err)?;
    let grads = step.loss.backward().map_err(err)?;
    let mut c = Checks { tol, worst: 0.0 };
    let nets = [("online", &step.online), ("target", &step.target)];
    for (net, outs) in nets {
        for (view, o) in outs.iter().enumerate() {
            let at = |name: &str| format!("{net}_v{}.{name}", view + 1);
            for (name, t) in [
                ("proj_all", &o.proj_all),
                ("z_global", &o.global),
                ("align_maps", &o.align_maps),
                ("aligned_feats", &o.aligned),
                ("obj_proj", &o.objects),
            ] {
                c.check(&at(name), t, get(io, &at(name))?)?;
            }
        }
    }
    for (dir, (p, po)) in ["12", "21"].iter().zip(&step.preds) {
        c.check(&format!("pred_{dir}"), p, get(io, &format!("pred_{dir}"))?)?;
        c.check(
            &format!("pred_obj_{dir}"),
            po,
            get(io, &format!("pred_obj_{dir}"))?,
        )?;
    }
    for (dir, (inst, obj)) in ["12", "21"].iter().zip(&step.terms) {
        c.check(
            &format!("loss_inst_{dir}"),
            inst,
            get(io, &format!("loss_inst_{dir}"))?,
        )?;
        c.check(
            &format!("loss_obj_{dir}"),
            obj,
            get(io, &format!("loss_obj_{dir}"))?,
        )?;
    }
    c.check("loss", &step.loss, get(io, "loss")?)?;
    c.check(
        "grad_v1",
        &grad(&grads, v1.as_tensor(), "v1")?,
        get(io, "grad_v1")?,
    )?;
    c.check(
        "grad_v2",
        &grad(&grads, v2.as_tensor(), "v2")?,
        get(io, "grad_v2")?,
    )?;
    check_vars_under(&mut c, io, "grad.", &l.vars, Some(&grads))?;
    check_vars_under(&mut c, io, "after_forward.", &l.vars, None)?;
    // EMAN: the whole state averaged after the step, with the scheduled momentum.
    let total = hp["max_iter"].as_u64().ok_or("manifest lacks `max_iter`")? as usize;
    let iter = hp["cur_iter"].as_u64().ok_or("manifest lacks `cur_iter`")? as usize;
    let m = cosine_momentum(f64_of(hp, "base_m")?, iter, total);
    let m_t = Tensor::new(m as f32, &Device::Cpu).map_err(err)?;
    c.check("ema_momentum", &m_t, get(io, "ema_momentum")?)?;
    MomentumEncoder::pair(
        &l.vars.named(),
        "online_net",
        "target_net",
        MomentumScope::State,
    )
    .and_then(|e| e.update(m))
    .map_err(err)?;
    check_vars_under(&mut c, io, "ema_after.", &l.vars, None)?;
    // LEWELB (SyncBN recipe): the same weights with the target in training mode.
    if let Ok(theirs) = get(io, "lewelb.loss") {
        let fresh = Lewel::load(hp, weights)?;
        let (a, b) = (get(io, "v1")?, get(io, "v2")?);
        let step = lewel_step(&fresh, [a, b], weight, true).map_err(err)?;
        c.check("lewelb.loss", &step.loss, theirs)?;
    }
    Ok(Outcome::Ok(c.worst))
}
