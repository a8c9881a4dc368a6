//! The backward pass with Ember's patched candle-core (the first gradient reaching a tensor
//! is stored as its gradient) against candle 0.11.1's own sums (every gradient added to a
//! fresh tensor of zeros), switched at run time in one process and alternated step by step:
//! a training step of LightViT nano (the Fashion-MNIST preset's model) and of the ResNet
//! recipe. Also checks that both give the same gradients.
//!
//! `cargo bench --bench grad_sums`; EMBER_BENCH_QUICK=1 for a short pass.

#[path = "common/setup.rs"]
mod setup;

use std::time::Instant;

use candle_core::backprop::{set_zero_filled_gradient_sums, GradStore};
use candle_core::{DType, Device, Tensor, Var};
use ember_core::{EmberRng, SeededVarMap};
use ember_losses::cross_entropy;
use ember_models::Classifier;
use serde_json::{json, Value};
use setup::{median, resnet_recipe_config};

/// Forward and backward of one batch; the backward's seconds and the gradients.
fn backward(model: &dyn Classifier, x: &Tensor, y: &Tensor, zero_filled: bool) -> (f64, GradStore) {
    model.reseed(0);
    let loss = cross_entropy(&model.forward_t(x, true).unwrap(), y, 0.1).unwrap();
    set_zero_filled_gradient_sums(zero_filled);
    let t = Instant::now();
    let grads = loss.backward().unwrap();
    let seconds = t.elapsed().as_secs_f64();
    set_zero_filled_gradient_sums(false);
    (seconds, grads)
}

/// Whether two stores hold equal gradients of `vars` (`==`: up to the sign of a zero).
fn same_gradients(vars: &[Var], a: &GradStore, b: &GradStore) -> bool {
    let values = |g: Option<&Tensor>| g.map(|g| g.flatten_all().unwrap().to_vec1::<f32>().unwrap());
    vars.iter().all(|v| values(a.get(v)) == values(b.get(v)))
}

fn bench(name: &str, family: &str, config: &Value, batch: usize, side: usize, steps: usize) {
    let dev = Device::Cpu;
    let vars = SeededVarMap::new(0);
    let model = ember_models::build(family, config, vars.var_builder(DType::F32, &dev)).unwrap();
    let x = EmberRng::new(1)
        .normal_tensor((batch, 1, side, side), 0.0, 1.0, DType::F32, &dev)
        .unwrap();
    let y = Tensor::from_vec((0..batch as u32).map(|i| i % 10).collect(), batch, &dev).unwrap();
    let params = vars.vars().all_vars();

    let (_, patched) = backward(model.as_ref(), &x, &y, false);
    let (_, zero_filled) = backward(model.as_ref(), &x, &y, true);
    let same = if same_gradients(&params, &patched, &zero_filled) {
        "the same gradients"
    } else {
        "DIFFERENT GRADIENTS"
    };
    drop((patched, zero_filled));

    let (mut ours, mut candles) = (vec![], vec![]);
    for _ in 0..steps {
        ours.push(backward(model.as_ref(), &x, &y, false).0);
        candles.push(backward(model.as_ref(), &x, &y, true).0);
    }
    let (ours, candles) = (median(ours), median(candles));
    println!(
        "{name}, batch {batch}: backward {:.0} ms with candle's zero-filled sums, {:.0} ms \
         patched: {:.2}x ({same})",
        candles * 1e3,
        ours * 1e3,
        candles / ours
    );
}

fn main() {
    // The allocator the tools run with (mimalloc, no purging).
    ember_cli::startup::configure();
    ember_cli::startup::compute_pool(None);
    let steps = if std::env::var_os("EMBER_BENCH_QUICK").is_some() {
        1
    } else {
        7
    };
    let lightvit = ember_models::resolve("lightvit_nano_32", &json!({})).unwrap();
    bench(
        "lightvit_nano_32 (the fashion-mnist preset), 1x32x32",
        &lightvit.family,
        &lightvit.config,
        128,
        32,
        steps,
    );
    bench(
        "ResNet recipe (blocks 2-2-2-2), 1x28x28",
        "resnet",
        &resnet_recipe_config(),
        128,
        28,
        steps,
    );
}
