//! LightViT throughput on the CPU: LightViT-T at 224 px (batch 32, 1000 classes) and the
//! Fashion-MNIST variant `lightvit_tiny_32` (batch 128, 1x32x32, 10 classes). For each,
//! inference images/s, training-step images/s (forward, backward, AdamW) split into its
//! phases, and the achieved GFLOP/s against the machine's fp32 peak. FLOPs are 2 x the
//! config-derived MACs with window attention counted (`lightvit::flops`), x3 for a training
//! step (forward, and backward's two GEMMs per layer).
//!
//! `cargo bench --bench lightvit`; EMBER_BENCH_QUICK=1 for a short pass.

#[path = "common/peak.rs"]
mod peak;

#[path = "common/setup.rs"]
mod setup;

use std::time::Instant;

use candle_core::{Device, Tensor};
use ember_core::{EmberRng, SeededVarMap};
use ember_losses::cross_entropy;
use ember_models::lightvit::{flops, Config};
use ember_models::registry;
use ember_train::optim::{default_groups, Method, Optimizer};
use ember_train::trainer::parameters;
use setup::{device_and_dtype, median};

/// Waits for the device's queued work, so timings cover it.
fn sync(dev: &Device) {
    dev.synchronize().unwrap();
}

fn bench(name: &str, cfg: &Config, batch: usize, side: usize, steps: usize, peak: f64) {
    let (dev, dtype) = device_and_dtype();
    let vars = SeededVarMap::new(0);
    let config = serde_json::to_value(cfg).unwrap();
    let model = registry::build("lightvit", &config, vars.var_builder(dtype, &dev)).unwrap();
    let mut opt = Optimizer::new(
        Method::AdamW {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        },
        default_groups(parameters(&vars), 0.04, model.no_weight_decay()),
        1e-3,
    );
    let mut rng = EmberRng::new(1);
    let x = rng
        .normal_tensor((batch, cfg.in_chans, side, side), 0.0, 1.0, dtype, &dev)
        .unwrap();
    let labels: Vec<u32> = (0..batch).map(|i| (i % cfg.num_classes) as u32).collect();
    let y = Tensor::from_vec(labels, batch, &dev).unwrap();
    let gflop = 2.0 * flops::count(cfg, side, side).window_attention_included / 1e9;

    let (mut fwd, mut bwd, mut upd, mut inf) = (vec![], vec![], vec![], vec![]);
    for i in 0..=steps {
        model.reseed(i as u64);
        sync(&dev);
        let t = Instant::now();
        let loss = cross_entropy(&model.forward_t(&x, true).unwrap(), &y, 0.1).unwrap();
        sync(&dev);
        let t1 = Instant::now();
        let grads = loss.backward().unwrap();
        sync(&dev);
        let t2 = Instant::now();
        opt.step(&grads).unwrap();
        sync(&dev);
        let t3 = Instant::now();
        drop(model.forward_t(&x, false).unwrap());
        sync(&dev);
        let t4 = Instant::now();
        if i > 0 {
            fwd.push((t1 - t).as_secs_f64());
            bwd.push((t2 - t1).as_secs_f64());
            upd.push((t3 - t2).as_secs_f64());
            inf.push((t4 - t3).as_secs_f64());
        }
    }
    let (f, b, u, e) = (median(fwd), median(bwd), median(upd), median(inf));
    let step = f + b + u;
    let b_ = batch as f64;
    println!("{name}, batch {batch}, {side}x{side}, {gflop:.3} GFLOP/image forward, {dtype:?} on {dev:?}:");
    println!(
        "  inference: {:.0} img/s, {:.0} GFLOP/s = {:.0}% of peak",
        b_ / e,
        b_ * gflop / e,
        100.0 * b_ * gflop / e / peak
    );
    println!(
        "  training step: {:.0} img/s ({:.0} ms: forward {:.0}, backward {:.0}, AdamW {:.0}), {:.0} GFLOP/s = {:.0}% of peak",
        b_ / step,
        step * 1e3,
        f * 1e3,
        b * 1e3,
        u * 1e3,
        3.0 * b_ * gflop / step,
        100.0 * 3.0 * b_ * gflop / step / peak
    );
}

fn main() {
    // The allocator the tools run with (mimalloc, no purging).
    ember_cli::startup::configure();
    ember_cli::startup::compute_pool(None);
    let quick = std::env::var_os("EMBER_BENCH_QUICK").is_some();
    let steps = if quick { 1 } else { 5 };
    // The CPU's fp32 peak; on a GPU, give its peak for the dtype in EMBER_PEAK_GFLOPS.
    let (peak, how) = peak::peak_gflops();
    println!("peak: {peak:.0} GFLOP/s ({how})");
    bench(
        "lightvit_tiny_32 (Fashion-MNIST)",
        &Config::tiny_32(),
        128,
        32,
        steps,
        peak,
    );
    bench(
        "LightViT-T (ImageNet)",
        &Config::tiny(),
        32,
        224,
        steps,
        peak,
    );
}
