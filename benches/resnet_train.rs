//! Training and inference throughput of the README's Fashion-MNIST ResNet (ResNet-18 layout,
//! small-image stem, stage widths 16-32-64-128, 1x28x28 inputs) at batch 128, against the same
//! network built from candle's own layers (`candle_nn::Conv2d`, `candle_nn::BatchNorm`) in the
//! same process, and the share of a training step spent waiting for the data loader.
//!
//! `cargo bench --bench resnet_train`; EMBER_BENCH_QUICK=1 for a short pass. Both models
//! share one set of weights; steps alternate between them so machine drift hits both alike.

#[path = "common/setup.rs"]
mod setup;

use std::time::Instant;

use candle_core::{DType, Device, Module, ModuleT, Tensor};
use candle_nn::{BatchNorm, Conv2d, Conv2dConfig, Linear, VarBuilder};
use ember_core::{EmberRng, SeededVarMap};
use ember_data::{DataSource, Loader, LoaderConfig, Preprocess};
use ember_losses::cross_entropy;
use ember_models::Classifier;
use ember_train::optim::{default_groups, Method, Optimizer};
use ember_train::trainer::parameters;
use setup::{median, resnet_recipe_config};

const BATCH: usize = 128;

type ConvBn = (Conv2d, BatchNorm);

/// The same network from candle's layers: the baseline.
struct CandleResNet {
    stem: (Conv2d, BatchNorm),
    blocks: Vec<(ConvBn, ConvBn, Option<ConvBn>)>,
    fc: Linear,
}

fn conv_bn(
    vb: &VarBuilder,
    conv: &str,
    bn: &str,
    cin: usize,
    cout: usize,
    k: usize,
    stride: usize,
) -> (Conv2d, BatchNorm) {
    let cfg = Conv2dConfig {
        padding: k / 2,
        stride,
        ..Default::default()
    };
    let c = candle_nn::conv2d_no_bias(cin, cout, k, cfg, vb.pp(conv)).unwrap();
    let b = candle_nn::batch_norm(cout, 1e-5, vb.pp(bn)).unwrap();
    (c, b)
}

impl CandleResNet {
    fn new(vb: VarBuilder) -> Self {
        let stem = conv_bn(&vb, "conv1", "bn1", 1, 64, 3, 1);
        let mut blocks = Vec::new();
        let mut cin = 64;
        for (i, planes) in [16, 32, 64, 128].into_iter().enumerate() {
            for j in 0..2 {
                let stride = if i > 0 && j == 0 { 2 } else { 1 };
                let vb = vb.pp(format!("layer{}.{j}", i + 1));
                let a = conv_bn(&vb, "conv1", "bn1", cin, planes, 3, stride);
                let b = conv_bn(&vb, "conv2", "bn2", planes, planes, 3, 1);
                let down = (stride != 1 || cin != planes)
                    .then(|| conv_bn(&vb, "downsample.0", "downsample.1", cin, planes, 1, stride));
                blocks.push((a, b, down));
                cin = planes;
            }
        }
        let fc = candle_nn::linear(cin, 10, vb.pp("fc")).unwrap();
        Self { stem, blocks, fc }
    }

    fn forward_t(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        let cb = |(c, b): &(Conv2d, BatchNorm), x: &Tensor| b.forward_t(&c.forward(x)?, train);
        let mut h = cb(&self.stem, x)?.relu()?;
        for (a, b, down) in &self.blocks {
            let y = cb(b, &cb(a, &h)?.relu()?)?;
            let s = match down {
                Some(d) => cb(d, &h)?,
                None => h.clone(),
            };
            h = (y + s)?.relu()?;
        }
        self.fc.forward(&h.mean((2, 3))?)
    }
}

fn main() {
    // The allocator the tools run with (mimalloc, no purging).
    ember_cli::startup::configure();
    ember_cli::startup::compute_pool(None);
    let quick = std::env::var_os("EMBER_BENCH_QUICK").is_some();
    let steps = if quick { 3 } else { 12 };
    let dev = Device::Cpu;
    let vars = SeededVarMap::new(0);
    let vb = vars.var_builder(DType::F32, &dev);
    let ember = ember_models::build("resnet", &resnet_recipe_config(), vb.clone()).unwrap();
    let candle = CandleResNet::new(vb);
    let mut opt = Optimizer::new(
        Method::Sgd {
            momentum: 0.9,
            nesterov: true,
        },
        default_groups(parameters(&vars), 5e-4, &[]),
        0.01,
    );

    let mut rng = EmberRng::new(1);
    let x = rng
        .normal_tensor((BATCH, 1, 28, 28), 0.0, 1.0, DType::F32, &dev)
        .unwrap();
    let y = Tensor::from_vec(
        (0..BATCH as u32).map(|i| i % 10).collect::<Vec<_>>(),
        BATCH,
        &dev,
    )
    .unwrap();

    let mut train_step = |forward: &dyn Fn(&Tensor) -> candle_core::Result<Tensor>| {
        let loss = cross_entropy(&forward(&x).unwrap(), &y, 0.0).unwrap();
        opt.step(&loss.backward().unwrap()).unwrap();
    };
    let ember_train = |x: &Tensor| Classifier::forward_t(ember.as_ref(), x, true);
    let candle_train = |x: &Tensor| candle.forward_t(x, true);
    let (mut te, mut tc) = (Vec::new(), Vec::new());
    for i in 0..steps + 1 {
        let t = Instant::now();
        train_step(&ember_train);
        let a = t.elapsed().as_secs_f64();
        let t = Instant::now();
        train_step(&candle_train);
        let b = t.elapsed().as_secs_f64();
        if i > 0 {
            te.push(a);
            tc.push(b);
        }
    }
    let (te, tc) = (median(te), median(tc));
    println!(
        "training step, batch {BATCH}: ember {:.0} img/s, candle layers {:.0} img/s, ratio {:.2}x",
        BATCH as f64 / te,
        BATCH as f64 / tc,
        tc / te
    );

    let (mut ie, mut ic) = (Vec::new(), Vec::new());
    for i in 0..steps * 2 + 1 {
        let t = Instant::now();
        drop(Classifier::forward_t(ember.as_ref(), &x, false).unwrap());
        let a = t.elapsed().as_secs_f64();
        let t = Instant::now();
        drop(candle.forward_t(&x, false).unwrap());
        let b = t.elapsed().as_secs_f64();
        if i > 0 {
            ie.push(a);
            ic.push(b);
        }
    }
    let (ie, ic) = (median(ie), median(ic));
    println!(
        "inference, batch {BATCH}: ember {:.0} img/s, candle layers {:.0} img/s, ratio {:.2}x",
        BATCH as f64 / ie,
        BATCH as f64 / ic,
        ic / ie
    );

    // The real loader feeding real training steps: how long does each step wait for data?
    let data = ember_data::open(&DataSource::FashionMnist, 1, 28).unwrap();
    let prep = Preprocess {
        channels: 1,
        height: 28,
        width: 28,
        mean: data.mean.clone(),
        std: data.std.clone(),
    };
    let cfg = LoaderConfig {
        batch_size: BATCH,
        shuffle: true,
        drop_last: true,
        workers: 2,
        seed: 0,
        shard: ember_data::Shard::WHOLE,
    };
    let loader = Loader::new(data.train.clone(), prep.train_pipeline(2, true), cfg).unwrap();
    let (mut wait, mut total) = (0.0, 0.0);
    let mut batches = loader.epoch(0, 0);
    for _ in 0..steps {
        let t = Instant::now();
        let batch = batches.next().unwrap().unwrap();
        let w = t.elapsed().as_secs_f64();
        let (bx, by) = batch.to_tensors(&dev).unwrap();
        let loss = cross_entropy(
            &Classifier::forward_t(ember.as_ref(), &bx, true).unwrap(),
            &by,
            0.0,
        )
        .unwrap();
        opt.step(&loss.backward().unwrap()).unwrap();
        wait += w;
        total += t.elapsed().as_secs_f64();
    }
    println!(
        "data wait: {:.2}% of step time ({} workers, {}, random crop + flip)",
        100.0 * wait / total,
        2,
        data.train.source()
    );
}
