//! Ember's side of `scripts/gpu_check.sh`: every case of `scripts/torch_ref/cases.json` (the
//! shapes of the CUDA issue: GEMMs, dense and depthwise convs, an AdamW step over ResNet-18's
//! parameters, ResNet-18 and LightViT-T training and LightViT-T inference in bf16), one JSON
//! line per case (`name`, `ms`, `per_s`) as `scripts/torch_ref/bench.py` prints PyTorch's in
//! the same run; `scripts/torch_ref/compare.py` puts them side by side with the ratio.
//!
//! `EMBER_BENCH_DEVICE=cuda cargo bench --bench side_by_side`; `EMBER_BENCH_QUICK=1` shrinks
//! every case (batch / 16, matmul n / 8, one timed iteration) to check the bench on a CPU.

#[path = "common/setup.rs"]
mod setup;

use std::time::Instant;

use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Result, Tensor, Var};
use ember_core::{EmberRng, SeededVarMap};
use ember_losses::cross_entropy;
use ember_models::registry;
use ember_ops::Conv2dParams;
use ember_train::optim::{Method, Optimizer, ParamGroup};
use ember_train::trainer::parameters;
use serde_json::{json, Value};
use setup::median;

const CASES: &str = include_str!("../scripts/torch_ref/cases.json");

type Step = Box<dyn FnMut() -> Result<()>>;

struct Bench {
    dev: Device,
    quick: bool,
    rng: EmberRng,
}

impl Bench {
    fn randn(&mut self, shape: &[usize], dtype: DType) -> Result<Tensor> {
        self.rng
            .normal_tensor(shape.to_vec(), 0.0, 1.0, DType::F32, &self.dev)
            .map_err(candle_core::Error::wrap)?
            .to_dtype(dtype)
    }

    fn shrink(&self, batch: usize) -> usize {
        if self.quick {
            (batch / 16).max(1)
        } else {
            batch
        }
    }

    /// The median seconds of `step` after warm-up, the device's queue drained around each.
    fn time(&self, mut step: Step) -> Result<f64> {
        let (warmup, iters) = if self.quick { (1, 1) } else { (3, 10) };
        for _ in 0..warmup {
            step()?;
        }
        let mut times = Vec::new();
        for _ in 0..iters {
            self.dev.synchronize()?;
            let t = Instant::now();
            step()?;
            self.dev.synchronize()?;
            times.push(t.elapsed().as_secs_f64());
        }
        Ok(median(times))
    }

    /// The step of case `c` and the work it does (items for per-second figures).
    fn case(&mut self, c: &Value) -> Result<(Step, Option<(f64, &'static str)>)> {
        let dtype = match c["dtype"].as_str() {
            Some("bf16") => DType::BF16,
            Some("f16") => DType::F16,
            _ => DType::F32,
        };
        candle_core::cuda::set_gemm_reduced_precision_f32(c["tf32"].as_bool() == Some(true));
        let int = |key: &str| c[key].as_u64().unwrap_or(0) as usize;
        match c["kind"].as_str().unwrap_or("") {
            "matmul" => {
                let n = int("n") / if self.quick { 8 } else { 1 };
                let (a, b) = (self.randn(&[n, n], dtype)?, self.randn(&[n, n], dtype)?);
                let flop = 2.0 * (n as f64).powi(3) / 1e12;
                Ok((
                    Box::new(move || a.matmul(&b).map(drop)),
                    Some((flop, "TFLOP/s")),
                ))
            }
            "conv" => {
                let batch = self.shrink(int("batch"));
                let (cin, cout, hw, groups) = (int("cin"), int("cout"), int("hw"), int("groups"));
                let params = Conv2dParams::default().padding(1).groups(groups);
                let x = self.randn(&[batch, cin, hw, hw], dtype)?;
                let w = self.randn(&[cout, cin / groups, 3, 3], dtype)?;
                let work = Some((batch as f64, "img/s"));
                if c["backward"].as_bool() != Some(true) {
                    let step = move || ember_ops::conv2d(&x, &w, params).map(drop);
                    return Ok((Box::new(step), work));
                }
                let (x, w) = (Var::from_tensor(&x)?, Var::from_tensor(&w)?);
                let r = self.randn(&[batch, cout, hw, hw], dtype)?;
                let step = move || {
                    let y = ember_ops::conv2d(x.as_tensor(), w.as_tensor(), params)?;
                    (y * &r)?.sum_all()?.backward().map(drop)
                };
                Ok((Box::new(step), work))
            }
            kind => {
                let arch = c["arch"].as_str().unwrap_or("");
                let cfg =
                    registry::resolve(arch, &Value::Null).map_err(candle_core::Error::wrap)?;
                let vars = SeededVarMap::new(0);
                let model_dtype = if kind == "adamw" { DType::F32 } else { dtype };
                let model = registry::build(
                    &cfg.family,
                    &cfg.config,
                    vars.var_builder(model_dtype, &self.dev),
                )
                .map_err(candle_core::Error::wrap)?;
                let params = parameters(&vars);
                let mut opt = adamw(params.clone());
                if kind == "adamw" {
                    let mut grads = GradStore::default();
                    for (_, v) in &params {
                        grads.insert(v, self.randn(v.dims(), DType::F32)?);
                    }
                    return Ok((Box::new(move || opt.step(&grads)), None));
                }
                let batch = self.shrink(int("batch"));
                let size = int("size");
                let x = self.randn(&[batch, 3, size, size], dtype)?;
                let labels: Vec<u32> = (0..batch).map(|i| (i * 7 % 1000) as u32).collect();
                let y = Tensor::from_vec(labels, batch, &self.dev)?;
                let work = Some((batch as f64, "img/s"));
                if kind == "infer" {
                    let step = move || model.forward_t(&x, false).map(drop);
                    return Ok((Box::new(step), work));
                }
                let step = move || {
                    let loss = cross_entropy(&model.forward_t(&x, true)?, &y, 0.0)?;
                    match opt.backward(&loss)? {
                        Some(grads) => opt.step(&grads),
                        None => Ok(()),
                    }
                };
                Ok((Box::new(step), work))
            }
        }
    }
}

/// AdamW over every parameter, lr 1e-3, weight decay 0.05 (PyTorch's AdamW decays all too).
fn adamw(params: Vec<(String, Var)>) -> Optimizer {
    let method = Method::AdamW {
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
    };
    let group = ParamGroup {
        params,
        weight_decay: 0.05,
        trust: false,
    };
    Optimizer::new(method, vec![group], 1e-3)
}

fn main() -> Result<()> {
    ember_cli::startup::configure();
    ember_cli::startup::compute_pool(None);
    let (dev, _) = setup::device_and_dtype();
    let quick = std::env::var_os("EMBER_BENCH_QUICK").is_some();
    let mut bench = Bench {
        dev,
        quick,
        rng: EmberRng::new(0),
    };
    let cases: Value = serde_json::from_str(CASES).map_err(candle_core::Error::wrap)?;
    for c in cases["cases"].as_array().into_iter().flatten() {
        let (step, work) = bench.case(c)?;
        let seconds = bench.time(step)?;
        let mut record = json!({"name": c["name"], "ms": seconds * 1e3});
        if let Some((amount, unit)) = work {
            record["per_s"] = json!(amount / seconds);
            record["unit"] = json!(unit);
        }
        println!("{record}");
    }
    Ok(())
}
