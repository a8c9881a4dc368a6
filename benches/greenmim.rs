//! GreenMIM against the SimMIM-style dense baseline: one pre-training step (forward, loss,
//! backward, AdamW) of the same Swin encoder on the same batch and mask ratio (0.75), timed
//! and measured for peak memory in the same process, the two methods alternating so that
//! both see the same machine load. Peak memory is the most bytes live during the step above
//! those live before it (Ember's allocator counts them: the CPU's
//! `torch.cuda.max_memory_allocated`). The paper claims ~2.7x faster and ~70% less memory
//! for Swin-B at 224 px.
//!
//! Cases: `swin_nano_32` at batch 128 (the Fashion-MNIST model), and Swin-T's encoder at
//! 224 px (batch 8 on the CPU; EMBER_BENCH_BATCH sets it). `cargo bench --bench greenmim`;
//! EMBER_BENCH_QUICK=1 runs one step of each; EMBER_BENCH_DEVICE / EMBER_BENCH_DTYPE as in
//! the other benches. On a GPU the memory column counts host allocations only:
//! `scripts/gpu_check.sh` runs each method alone (EMBER_BENCH_ONLY=greenmim|simmim) and
//! reads the device's peak from nvidia-smi.

#[path = "common/setup.rs"]
mod setup;

use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use ember_cli::alloc::{live_bytes, peak_bytes, reset_peak};
use ember_core::{EmberRng, SeededVarMap};
use ember_losses::{masked_mse, normalize_units, patchify};
use ember_models::mim::{self, MaskedModel, Method, Placement, UnitMask};
use ember_models::swin;
use ember_train::optim::{default_groups, Method as Optim, Optimizer};
use ember_train::trainer::parameters;
use setup::{device_and_dtype, median};

/// One method ready to step.
struct Runner {
    model: MaskedModel,
    opt: Optimizer,
    cfg: mim::Config,
    _vars: SeededVarMap,
}

impl Runner {
    fn new(
        encoder: &swin::Config,
        method: Method,
        decoder: (usize, usize),
        dev: &Device,
        dtype: DType,
    ) -> Self {
        let cfg = mim::Config {
            method,
            encoder: encoder.clone(),
            decoder_embed_dim: decoder.0,
            decoder_depth: 1,
            decoder_num_heads: decoder.1,
            decoder_mlp_ratio: 4.0,
            norm_pix_loss: true,
            mask_ratio: 0.75,
            placement: Placement::Raster,
        };
        let vars = SeededVarMap::new(0);
        let model = MaskedModel::new(&cfg, vars.var_builder(dtype, dev)).unwrap();
        let opt = Optimizer::new(
            Optim::AdamW {
                beta1: 0.9,
                beta2: 0.95,
                eps: 1e-8,
            },
            default_groups(parameters(&vars), 0.05, &["position_bias", "token"]),
            1e-4,
        );
        Self {
            model,
            opt,
            cfg,
            _vars: vars,
        }
    }

    /// One training step; returns (seconds, peak bytes above the step's start).
    fn step(&mut self, x: &Tensor, mask: &UnitMask, dev: &Device) -> (f64, usize) {
        dev.synchronize().unwrap();
        let before = live_bytes();
        reset_peak();
        let t = Instant::now();
        let pred = self
            .model
            .forward_t(x, mask, true)
            .unwrap()
            .to_dtype(DType::F32)
            .unwrap();
        let target = normalize_units(
            &patchify(
                &x.to_dtype(DType::F32).unwrap(),
                self.cfg.encoder.mask_unit(),
            )
            .unwrap(),
        )
        .unwrap();
        let rows = Tensor::new(mask.masked(), dev)
            .unwrap()
            .unsqueeze(0)
            .unwrap()
            .repeat((x.dim(0).unwrap(), 1))
            .unwrap();
        let loss = masked_mse(&pred, &target, &rows).unwrap();
        self.opt.step(&loss.backward().unwrap()).unwrap();
        dev.synchronize().unwrap();
        (
            t.elapsed().as_secs_f64(),
            peak_bytes().saturating_sub(before),
        )
    }
}

fn bench(name: &str, encoder: &swin::Config, batch: usize, decoder: (usize, usize), steps: usize) {
    let (dev, dtype) = device_and_dtype();
    let side = encoder.img_size;
    let mut rng = EmberRng::new(1);
    let data: Vec<f32> = (0..batch * encoder.in_chans * side * side)
        .map(|_| rng.normal(0.0, 1.0) as f32)
        .collect();
    let x = Tensor::from_vec(data, (batch, encoder.in_chans, side, side), &dev)
        .unwrap()
        .to_dtype(dtype)
        .unwrap();
    let only = std::env::var("EMBER_BENCH_ONLY").ok();
    let mut runners: Vec<(&str, Runner)> = [
        ("SimMIM-style", Method::SimMim),
        ("GreenMIM", Method::GreenMim),
    ]
    .into_iter()
    .filter(|(label, _)| {
        only.as_deref()
            .is_none_or(|o| label.to_lowercase().starts_with(o))
    })
    .map(|(label, method)| (label, Runner::new(encoder, method, decoder, &dev, dtype)))
    .collect();
    let units = runners[0].1.cfg.unit_side();
    let visible = (units * units) as f64 * (1.0 - runners[0].1.cfg.mask_ratio);
    println!(
        "{name}: batch {batch}, {units}x{units} mask units, {} visible",
        visible as usize
    );
    let mut times = vec![Vec::new(); runners.len()];
    let mut peaks = vec![0usize; runners.len()];
    // A warm-up step each, then the methods alternate on the same masks.
    for i in 0..=steps {
        let mask = UnitMask::random(units, 0.75, &mut rng);
        for (k, (_, runner)) in runners.iter_mut().enumerate() {
            let (t, mem) = runner.step(&x, &mask, &dev);
            if i > 0 {
                times[k].push(t);
            }
            peaks[k] = peaks[k].max(mem);
        }
    }
    let medians: Vec<f64> = times.into_iter().map(median).collect();
    for (k, (label, _)) in runners.iter().enumerate() {
        println!(
            "  {label} step: {:.0} ms, peak {:.0} MB",
            medians[k] * 1e3,
            peaks[k] as f64 / 1e6
        );
    }
    if let ([s, g], [sm, gm]) = (&medians[..], &peaks[..]) {
        println!(
            "  GreenMIM vs SimMIM: {:.2}x faster, {:.2}x the memory ({:.0}% less)",
            s / g,
            *gm as f64 / *sm as f64,
            100.0 * (1.0 - *gm as f64 / *sm as f64)
        );
    }
}

fn main() {
    ember_cli::startup::configure();
    ember_cli::startup::compute_pool(None);
    let quick = std::env::var_os("EMBER_BENCH_QUICK").is_some();
    let steps = if quick { 1 } else { 5 };
    let nano = swin::Config {
        norm_eps: 1e-6,
        drop_path_rate: 0.0,
        ..swin::Config::nano_32()
    };
    bench("swin_nano_32 (Fashion-MNIST)", &nano, 128, (64, 4), steps);
    let tiny = swin::Config {
        norm_eps: 1e-6,
        drop_path_rate: 0.0,
        ..swin::Config::tiny()
    };
    let batch = std::env::var("EMBER_BENCH_BATCH")
        .ok()
        .and_then(|b| b.parse().ok())
        .unwrap_or(8);
    bench(
        "Swin-T encoder, 224 px",
        &tiny,
        batch,
        (512, 16),
        if quick { 1 } else { 3 },
    );
}
