//! DyRep sections: the Diverse Branch Block cases (eval and train forward, folded kernel,
//! deployed conv, branch weights), one growth step on the fixture's tiny net (importance
//! scores, the grown slot, the function-preserving new block) and one cut step. Shapes and
//! settings come from the manifest; block structure from the weight names.

use candle_core::{DType, Device, ModuleT, Tensor};
use candle_nn::{Init, Module};
use ember_core::SeededVarMap;
use ember_models::layers::{linear, BatchNorm2d, Conv2d};
use ember_models::rep::{cut, Branch, Branches, ConvShape, Importance, RepConv, RepPlan, SlotForm};
use ember_ops::{conv2d, Conv2dParams};
use serde_json::Value;

use crate::compare::{err, get, under, Checks, Tensors, Tolerance};
use crate::Outcome;

type Lines = Vec<(String, Result<Outcome, String>)>;

/// The official cut thresholds (`adjust_model`).
const SPREAD: f64 = 0.02;
const FLOOR: f64 = 0.1;

pub fn cases(spec: &Value, weights: &Tensors, io: &Tensors, tol: &Tolerance) -> Lines {
    let mut lines = Lines::new();
    if let Some(cases) = spec["cases"].as_object() {
        for (case, cfg) in cases {
            lines.push((case.clone(), block_case(case, cfg, weights, io, tol)));
        }
    }
    if spec["grow"].is_object() {
        lines.push(("grow".into(), grow_case(&spec["grow"], weights, io, tol)));
    }
    if spec["cut"].is_object() {
        lines.push(("cut".into(), cut_case(weights, io, tol)));
    }
    if lines.is_empty() {
        lines.push((
            String::new(),
            Err("the dyrep section lists no cases".into()),
        ));
    }
    lines
}

fn usize_of(v: &Value, key: &str) -> Result<usize, String> {
    v[key]
        .as_u64()
        .map(|x| x as usize)
        .ok_or(format!("manifest lacks `{key}`"))
}

/// The branches whose weights exist under `path`.
fn branches_in(weights: &Tensors, path: &str) -> Branches {
    Branch::ALL.into_iter().fold(Branches::ALL, |b, br| {
        let prefix = format!("{path}.{}.", br.key());
        b.with(br, weights.keys().any(|k| k.starts_with(&prefix)))
    })
}

/// The tensors with `path.` put in front of their names.
fn under_path(weights: &Tensors, path: &str) -> Tensors {
    weights
        .iter()
        .map(|(k, t)| (format!("{path}.{k}"), t.clone()))
        .collect()
}

fn flags(b: Branches) -> Tensor {
    Tensor::new(&b.flags().map(i64::from), &Device::Cpu).expect("a small tensor")
}

fn weights_tensor(w: [f64; 7]) -> Tensor {
    Tensor::new(&w, &Device::Cpu).expect("a small tensor")
}

/// A slot at `path` holding the block of `weights` (loaded), with `shape`.
fn load_block(
    path: &str,
    shape: ConvShape,
    weights: &Tensors,
) -> Result<(SeededVarMap, RepConv), String> {
    let branches = branches_in(weights, path);
    let mut plan = RepPlan::default();
    plan.set(path, SlotForm::Block(branches));
    let vars = SeededVarMap::new(0);
    let vb = vars.var_builder(DType::F32, &Device::Cpu).pp(path);
    let slot = RepConv::new(vb, shape, Init::Const(0.0), &plan).map_err(err)?;
    ember_models::load_into(vars.vars(), weights, "the fixture's block").map_err(err)?;
    Ok((vars, slot))
}

fn block_case(
    case: &str,
    cfg: &Value,
    weights: &Tensors,
    io: &Tensors,
    tol: &Tolerance,
) -> Result<Outcome, String> {
    let k = usize_of(cfg, "k")?;
    let shape = ConvShape {
        cin: usize_of(cfg, "cin")?,
        cout: usize_of(cfg, "cout")?,
        k,
        stride: usize_of(cfg, "stride")?,
        padding: cfg["padding"].as_u64().map_or(k / 2, |p| p as usize),
        groups: usize_of(cfg, "groups")?,
        bias: false,
    };
    let asked: Vec<u8> = cfg["branches"]
        .as_array()
        .ok_or("case lacks `branches`")?
        .iter()
        .map(|v| v.as_u64().unwrap_or(0) as u8)
        .collect();
    let asked = Branches::try_from(asked)?;
    let weights = under(weights, case);
    let (_, slot) = load_block(case, shape, &under_path(&weights, case))?;
    let t = |name: &str| get(io, &format!("{case}.{name}"));
    let mut c = Checks { tol, worst: 0.0 };
    c.check("branches", &flags(asked.fitted(&shape)), t("branches")?)?;
    c.check(
        "branches (built)",
        &flags(slot.branches().ok_or("not a block")?),
        t("branches")?,
    )?;
    let x = t("input")?;
    c.check(
        "output",
        &slot.forward_t(x, false).map_err(err)?,
        t("output")?,
    )?;
    let (w, b) = slot.kernel().map_err(err)?;
    c.check("merged_weight", &w, t("merged_weight")?)?;
    c.check("merged_bias", &b, t("merged_bias")?)?;
    let deployed = conv2d(x, &w, shape.params())
        .and_then(|y| y.broadcast_add(&b.reshape((1, (), 1, 1))?))
        .map_err(err)?;
    c.check("merged_output", &deployed, t("merged_output")?)?;
    let bw = slot.branch_weights().map_err(err)?.ok_or("not a block")?;
    c.check("branch_weights", &weights_tensor(bw), t("branch_weights")?)?;
    // Last: training mode moves the running statistics.
    c.check(
        "output_train",
        &slot.forward_t(x, true).map_err(err)?,
        t("output_train")?,
    )?;
    Ok(Outcome::Ok(c.worst))
}

/// The fixture's tiny net: conv0 3x3 - bn0 - relu - conv1 3x3 - relu - conv2 1x1 - GAP - fc.
struct TinyNet {
    conv0: RepConv,
    bn0: BatchNorm2d,
    conv1: RepConv,
    conv2: Conv2d,
    fc: ember_models::layers::Linear,
}

impl TinyNet {
    fn new(vars: &SeededVarMap, cin: usize, c: usize, classes: usize) -> candle_core::Result<Self> {
        let vb = vars.var_builder(DType::F32, &Device::Cpu);
        let shape = |cin: usize| ConvShape {
            cin,
            cout: c,
            k: 3,
            stride: 1,
            padding: 1,
            groups: 1,
            bias: false,
        };
        let plan = RepPlan::default();
        let init = Init::Const(0.0);
        Ok(Self {
            conv0: RepConv::new(vb.pp("conv0"), shape(cin), init, &plan)?,
            bn0: BatchNorm2d::new(vb.pp("bn0"), c)?,
            conv1: RepConv::new(vb.pp("conv1"), shape(c), init, &plan)?,
            conv2: Conv2d::new(
                vb.pp("conv2"),
                c,
                c,
                1,
                Conv2dParams::default(),
                false,
                init,
            )?,
            fc: linear(vb.pp("fc"), c, classes)?,
        })
    }

    fn forward(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        let h = self.conv0.forward_t(x, train)?;
        let h = self.bn0.forward_t(&h, train)?.relu()?;
        let h = self.conv1.forward_t(&h, train)?.relu()?;
        let h = self.conv2.forward(&h)?;
        self.fc.forward(&h.mean((2, 3))?)
    }
}

fn grow_case(
    spec: &Value,
    weights: &Tensors,
    io: &Tensors,
    tol: &Tolerance,
) -> Result<Outcome, String> {
    let metric: Importance = spec["metric"].as_str().unwrap_or("synflow").parse()?;
    let (cin, c, classes) = (
        usize_of(spec, "cin")?,
        usize_of(spec, "c")?,
        usize_of(spec, "classes")?,
    );
    let before = under(weights, "grow.before");
    let after = under(weights, "grow.after");
    let vars = SeededVarMap::new(0);
    let net = TinyNet::new(&vars, cin, c, classes).map_err(err)?;
    let load = |what| ember_models::load_into(vars.vars(), &before, what).map_err(err);
    load("grow.before")?;
    let mut c = Checks { tol, worst: 0.0 };
    let x_eval = get(io, "grow.eval_input")?;
    c.check(
        "eval_output_before",
        &net.forward(x_eval, false).map_err(err)?,
        get(io, "grow.eval_output_before")?,
    )?;

    // The importance of each candidate over the fixture's training iterations.
    let candidates = [&net.conv0, &net.conv1];
    let mut scores: Vec<Vec<f64>> = vec![Vec::new(); candidates.len()];
    for i in 0.. {
        let (Some(x), Some(y)) = (
            io.get(&format!("grow.train_input{i}")),
            io.get(&format!("grow.train_target{i}")),
        ) else {
            break;
        };
        let logits = net.forward(x, true).map_err(err)?;
        let loss = ember_losses::cross_entropy(&logits, y, 0.0).map_err(err)?;
        let grads = loss.backward().map_err(err)?;
        for (slot, s) in candidates.iter().zip(scores.iter_mut()) {
            let w = slot.weight().ok_or("a candidate is not plain")?;
            let g = grads
                .get(&w)
                .ok_or(format!("{} got no gradient", slot.path()))?;
            s.push(metric.score(g, &w).map_err(err)?);
        }
    }
    let mut averages = Vec::new();
    for (slot, s) in candidates.iter().zip(&scores) {
        let name = slot.path();
        c.check(
            &format!("metric_iters.{name}"),
            &Tensor::new(s.as_slice(), &Device::Cpu).map_err(err)?,
            get(io, &format!("grow.metric_iters.{name}"))?,
        )?;
        let avg = s.iter().sum::<f64>() / s.len().max(1) as f64;
        c.check(
            &format!("metric_avg.{name}"),
            &Tensor::new(avg, &Device::Cpu).map_err(err)?,
            get(io, &format!("grow.metric_avg.{name}"))?,
        )?;
        averages.push((avg, *slot));
    }
    // Top-1 by average score, as `adjust_model` sorts them.
    averages.sort_by(|a, b| b.0.total_cmp(&a.0));
    let chosen = averages[0].1;
    let expected = spec["grown"].as_str().unwrap_or("");
    if chosen.path() != expected {
        return Err(format!(
            "we grow {}, the official code grows {expected}",
            chosen.path()
        ));
    }

    // Growth from the pre-growth state; new branch convolutions take the official draws.
    load("grow.before (again)")?;
    let original = chosen.grow(&vars, Branches::ALL).map_err(err)?;
    c.check(
        "original_weight",
        &original.0,
        get(io, "grow.original_weight")?,
    )?;
    let kxk = format!("{expected}.{}.conv.weight", Branch::Kxk.key());
    for (name, var) in vars.named() {
        let leaf = name.rsplit('.').nth(1).unwrap_or("");
        if name.starts_with(&format!("{expected}."))
            && leaf.starts_with("conv")
            && name.ends_with(".weight")
            && name != kxk
        {
            var.set(get(&after, &name)?).map_err(err)?;
        }
    }
    chosen.absorb(&original).map_err(err)?;
    c.check_vars(&vars, &after)?;
    c.check(
        "eval_output_after",
        &net.forward(x_eval, false).map_err(err)?,
        get(io, "grow.eval_output_after")?,
    )?;
    let (w, b) = chosen.kernel().map_err(err)?;
    c.check(
        "merged_weight_after",
        &w,
        get(io, "grow.merged_weight_after")?,
    )?;
    c.check("merged_bias_after", &b, get(io, "grow.merged_bias_after")?)?;
    let bw = chosen.branch_weights().map_err(err)?.ok_or("not a block")?;
    c.check(
        "branch_weights_after",
        &weights_tensor(bw),
        get(io, "grow.branch_weights_after")?,
    )?;
    Ok(Outcome::Ok(c.worst))
}

fn cut_case(weights: &Tensors, io: &Tensors, tol: &Tolerance) -> Result<Outcome, String> {
    let before = under(weights, "cut.before");
    let after = under(weights, "cut.after");
    let w = get(&before, "blk.dbb_kxk.conv.weight")?;
    let (cout, cin_g, k, _) = w.dims4().map_err(err)?;
    let cin =
        get(&before, "blk.dbb_1x1_kxk.conv1.weight").map_or(cin_g, |t| t.dim(0).unwrap_or(cin_g));
    let shape = ConvShape {
        cin,
        cout,
        k,
        stride: 1,
        padding: k / 2,
        groups: cin / cin_g,
        bias: false,
    };
    let (vars, slot) = load_block("blk", shape, &before)?;
    let mut c = Checks { tol, worst: 0.0 };
    let x = get(io, "cut.input")?;
    c.check(
        "output_before",
        &slot.forward_t(x, false).map_err(err)?,
        get(io, "cut.output_before")?,
    )?;
    let (w, b) = slot.kernel().map_err(err)?;
    c.check(
        "merged_weight_before",
        &w,
        get(io, "cut.merged_weight_before")?,
    )?;
    c.check("merged_bias_before", &b, get(io, "cut.merged_bias_before")?)?;
    let bw = slot.branch_weights().map_err(err)?.ok_or("not a block")?;
    c.check(
        "branch_weights",
        &weights_tensor(bw),
        get(io, "cut.branch_weights")?,
    )?;
    let keep = cut::branches_to_keep(&bw, SPREAD, FLOOR).ok_or("the cut rule cuts nothing")?;
    c.check(
        "branches_after",
        &flags(keep),
        get(io, "cut.branches_after")?,
    )?;
    slot.cut(&vars, keep).map_err(err)?;
    c.check_vars(&vars, &after)?;
    c.check(
        "output_after",
        &slot.forward_t(x, false).map_err(err)?,
        get(io, "cut.output_after")?,
    )?;
    let (w, b) = slot.kernel().map_err(err)?;
    c.check(
        "merged_weight_after",
        &w,
        get(io, "cut.merged_weight_after")?,
    )?;
    c.check("merged_bias_after", &b, get(io, "cut.merged_bias_after")?)?;
    Ok(Outcome::Ok(c.worst))
}
