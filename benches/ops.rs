//! Ember's ops against candle's own at ResNet, MobileNet and ViT shapes, on this machine.
//!
//! `cargo bench --bench ops` prints, per shape, the median time of the forward pass and of
//! forward + backward for candle and for Ember, the ratio candle/Ember (above 1: Ember is
//! faster), and for conv2d the achieved GFLOP/s against the CPU's fp32 peak
//! (threads x 32 FLOP/cycle x clock; 32 = two 256-bit FMA pipes, as on Zen 4 and most AVX2+
//! cores; override with EMBER_PEAK_GFLOPS). Set EMBER_BENCH_QUICK=1 for one short pass.

#[path = "common/setup.rs"]
mod setup;

use std::time::Instant;

use candle_core::{DType, Device, Tensor, Var, D};
use ember_core::EmberRng;
use ember_ops::Conv2dParams;
use setup::median;

type Op<'a> = Box<dyn Fn(&[Tensor]) -> candle_core::Result<Tensor> + 'a>;

struct Bench {
    quick: bool,
}

impl Bench {
    /// Median seconds per call of `a` and of `b`, sampled alternately so that drifts in the
    /// machine's speed (shared host, clock changes) hit both sides alike.
    fn time_pair(&self, mut a: impl FnMut(), mut b: impl FnMut()) -> (f64, f64) {
        a();
        b();
        let budget = if self.quick { 0.1 } else { 1.5 };
        let (mut ta, mut tb) = (Vec::new(), Vec::new());
        let start = Instant::now();
        while ta.len() < 3 || (start.elapsed().as_secs_f64() < budget && ta.len() < 40) {
            let t = Instant::now();
            a();
            ta.push(t.elapsed().as_secs_f64());
            let t = Instant::now();
            b();
            tb.push(t.elapsed().as_secs_f64());
        }
        (median(ta), median(tb))
    }

    /// Forward only: (baseline, ember) seconds.
    fn forward(&self, baseline: &Op, ember: &Op, inputs: &[Tensor]) -> (f64, f64) {
        self.time_pair(
            || drop(baseline(inputs).unwrap()),
            || drop(ember(inputs).unwrap()),
        )
    }

    /// Forward and backward to every input.
    fn train(&self, baseline: Option<&Op>, ember: &Op, inputs: &[Tensor]) -> (Option<f64>, f64) {
        self.train_some(baseline, ember, inputs, &vec![true; inputs.len()])
    }

    /// Forward and backward to the inputs marked `true` (the others are data, like the image
    /// entering a network's stem).
    /// `baseline` is `None` where the baseline has no backward: then Ember is timed alone.
    fn train_some(
        &self,
        baseline: Option<&Op>,
        ember: &Op,
        inputs: &[Tensor],
        trainable: &[bool],
    ) -> (Option<f64>, f64) {
        let vars: Vec<Tensor> = inputs
            .iter()
            .zip(trainable)
            .map(|(t, &v)| {
                if v {
                    Var::from_tensor(t).unwrap().as_tensor().clone()
                } else {
                    t.clone()
                }
            })
            .collect();
        let step = |op: &Op| {
            let y = op(&vars).unwrap();
            let grads = y.sum_all().unwrap().backward().unwrap();
            let complete = vars
                .iter()
                .zip(trainable)
                .all(|(v, &t)| !t || grads.get(v).is_some());
            assert!(complete, "a gradient is missing");
        };
        match baseline {
            Some(baseline) => {
                let (b, e) = self.time_pair(|| step(baseline), || step(ember));
                (Some(b), e)
            }
            None => (None, self.time_pair(|| step(ember), || ()).0),
        }
    }
}

fn randn(shape: &[usize], seed: u64) -> Tensor {
    EmberRng::new(seed)
        .normal_tensor(shape.to_vec(), 0.0, 1.0, DType::F32, &Device::Cpu)
        .unwrap()
}

#[path = "common/peak.rs"]
mod peak;
use peak::peak_gflops;

fn ms(s: f64) -> String {
    format!("{:8.2}", s * 1e3)
}

struct ConvCase {
    name: String,
    x: [usize; 4],
    w: [usize; 4],
    stride: usize,
    padding: usize,
    groups: usize,
    /// How many times the shape occurs in the network (for the network total).
    count: usize,
    /// Whether the input needs a gradient (not for the stem, whose input is the image).
    input_grad: bool,
}

struct Totals {
    candle_train: f64,
    ember_train: f64,
    flops: f64,
}

fn conv_table(b: &Bench, title: &str, cases: &[ConvCase], peak: f64) -> Totals {
    println!("\n{title}");
    println!(
        "{:<26} {:>8} {:>8} {:>6} | {:>8} {:>8} {:>6} | {:>7} {:>6}",
        "shape", "candle", "ember", "ratio", "candle", "ember", "ratio", "GFLOP/s", "%peak"
    );
    println!(
        "{:<26} {:>24} | {:>24} | ember fwd+bwd",
        "", "forward (ms)", "forward+backward (ms)"
    );
    let mut totals = Totals {
        candle_train: 0.0,
        ember_train: 0.0,
        flops: 0.0,
    };
    for c in cases {
        let p = Conv2dParams::default()
            .stride(c.stride)
            .padding(c.padding)
            .groups(c.groups);
        let inputs = [randn(&c.x, 1), randn(&c.w, 2)];
        let (s, pd, g) = (c.stride, c.padding, c.groups);
        let candle: Op = Box::new(move |t| t[0].conv2d(&t[1], pd, s, 1, g));
        let ember: Op = Box::new(move |t| ember_ops::conv2d(&t[0], &t[1], p));
        let (cf, ef) = b.forward(&candle, &ember, &inputs);
        let (ct, et) = b.train_some(Some(&candle), &ember, &inputs, &[c.input_grad, true]);
        let ct = ct.expect("candle's conv has a backward");
        let passes = if c.input_grad { 3.0 } else { 2.0 };
        let flops = passes * ember_ops::conv::conv2d_flops(&c.x, &c.w, p).unwrap();
        let gflops = flops / et / 1e9;
        println!(
            "{:<26} {} {} {:>5.1}x | {} {} {:>5.1}x | {:>7.1} {:>5.0}%",
            c.name,
            ms(cf),
            ms(ef),
            cf / ef,
            ms(ct),
            ms(et),
            ct / et,
            gflops,
            100.0 * gflops / peak
        );
        totals.candle_train += ct * c.count as f64;
        totals.ember_train += et * c.count as f64;
        totals.flops += flops * c.count as f64;
    }
    totals
}

/// A non-conv op against candle's nearest equivalent. `baseline_trains` is false where
/// candle's op has no backward (or none for these settings): then only forwards are compared.
struct Case<'a> {
    name: String,
    inputs: Vec<Tensor>,
    baseline: Op<'a>,
    baseline_trains: bool,
    ember: Op<'a>,
}

fn case<'a>(
    name: &str,
    inputs: Vec<Tensor>,
    baseline: Op<'a>,
    baseline_trains: bool,
    ember: Op<'a>,
) -> Case<'a> {
    Case {
        name: name.to_string(),
        inputs,
        baseline,
        baseline_trains,
        ember,
    }
}

fn op_table(b: &Bench, title: &str, baseline: &str, cases: &[Case]) {
    println!("\n{title} (baseline: {baseline})");
    println!(
        "{:<34} {:>8} {:>8} {:>6} | {:>8} {:>8} {:>6}",
        "shape", "candle", "ember", "ratio", "candle", "ember", "ratio"
    );
    println!(
        "{:<34} {:>24} | {:>24}",
        "", "forward (ms)", "forward+backward (ms)"
    );
    for c in cases {
        let (bf, ef) = b.forward(&c.baseline, &c.ember, &c.inputs);
        let baseline = c.baseline_trains.then_some(&c.baseline);
        let train = match b.train(baseline, &c.ember, &c.inputs) {
            (Some(bt), et) => format!("{} {} {:>5.1}x", ms(bt), ms(et), bt / et),
            (None, et) => format!("{:>8} {} {:>6}", "no bwd", ms(et), "-"),
        };
        println!(
            "{:<34} {} {} {:>5.1}x | {train}",
            c.name,
            ms(bf),
            ms(ef),
            bf / ef
        );
    }
}

/// A convolution `count` times in a network, with a trainable input.
fn conv(
    name: String,
    x: [usize; 4],
    w: [usize; 4],
    stride: usize,
    padding: usize,
    count: usize,
) -> ConvCase {
    let groups = x[1] / w[1];
    ConvCase {
        name,
        x,
        w,
        stride,
        padding,
        groups,
        count,
        input_grad: true,
    }
}

/// The distinct convolutions of torchvision's ResNet-18 (how often each occurs) on
/// `size`x`size` images: with the small-image stem (3x3, stride 1, no max-pool) or the
/// ImageNet stem (7x7, stride 2, then a stride-2 max-pool). The stem's input is the image,
/// which needs no gradient.
fn resnet18_convs(n: usize, in_chans: usize, size: usize, small_stem: bool) -> Vec<ConvCase> {
    let (k, stride, mut map) = if small_stem {
        (3, 1, size)
    } else {
        (7, 2, size.div_ceil(4))
    };
    let stem = conv(
        format!("stem {k}x{k} s{stride} {in_chans}->64 {size}x{size}"),
        [n, in_chans, size, size],
        [64, in_chans, k, k],
        stride,
        k / 2,
        1,
    );
    let mut convs = vec![ConvCase {
        input_grad: false,
        ..stem
    }];
    convs.push(conv(
        format!("64->64 {map}x{map}"),
        [n, 64, map, map],
        [64, 64, 3, 3],
        1,
        1,
        4,
    ));
    for width in [128, 256, 512] {
        let (cin, out) = (width / 2, map.div_ceil(2));
        convs.push(conv(
            format!("{cin}->{width} s2 {map}->{out}"),
            [n, cin, map, map],
            [width, cin, 3, 3],
            2,
            1,
            1,
        ));
        convs.push(conv(
            format!("1x1 {cin}->{width} s2"),
            [n, cin, map, map],
            [width, cin, 1, 1],
            2,
            0,
            1,
        ));
        map = out;
        convs.push(conv(
            format!("{width}->{width} {map}x{map}"),
            [n, width, map, map],
            [width, width, 3, 3],
            1,
            1,
            3,
        ));
    }
    convs
}

fn network_total(name: &str, t: &Totals, peak: f64) {
    let gflops = t.flops / t.ember_train / 1e9;
    println!(
        "{name}, forward+backward of one batch: candle {:.0} ms, ember {:.0} ms, ratio {:.1}x, ember {gflops:.0} GFLOP/s = {:.0}% of peak",
        t.candle_train * 1e3,
        t.ember_train * 1e3,
        t.candle_train / t.ember_train,
        100.0 * gflops / peak
    );
}

/// `EMBER_BENCH_ONLY=conv,norm` runs only the sections whose names contain one of the words.
fn wanted(section: &str) -> bool {
    match std::env::var("EMBER_BENCH_ONLY") {
        Ok(only) => only.split(',').any(|w| section.contains(w.trim())),
        Err(_) => true,
    }
}

fn main() {
    let b = Bench {
        quick: std::env::var_os("EMBER_BENCH_QUICK").is_some(),
    };
    let (peak, how) = peak_gflops();
    println!(
        "fp32 peak: {peak:.0} GFLOP/s ({how}); rayon threads: {}",
        rayon::current_num_threads()
    );

    if wanted("matmul") {
        // The GEMM everything above runs on, as a ceiling for the convolutions.
        let (a, m) = (randn(&[2048, 2048], 1), randn(&[2048, 2048], 2));
        let (t, _) = b.time_pair(|| drop(a.matmul(&m).unwrap()), || ());
        let gflops = 2.0 * 2048f64.powi(3) / t / 1e9;
        println!("\ncandle matmul 2048x2048x2048 (the gemm crate, 2 threads): {gflops:.0} GFLOP/s = {:.0}% of peak", 100.0 * gflops / peak);
    }

    if wanted("conv-resnet28") {
        let n = 32;
        let title = format!(
            "conv2d: ResNet-18 with the small-image stem at 28x28 (Fashion-MNIST), batch {n}"
        );
        let t = conv_table(&b, &title, &resnet18_convs(n, 1, 28, true), peak);
        network_total("ResNet-18 (28x28) convs", &t, peak);
    }

    if wanted("conv-resnet224") {
        let n = 8;
        let title = format!("conv2d: ResNet-18 at 224x224 (ImageNet), batch {n}");
        let t = conv_table(&b, &title, &resnet18_convs(n, 3, 224, false), peak);
        network_total("ResNet-18 (224x224) convs", &t, peak);
    }

    if wanted("depthwise") {
        let n = 8;
        // MobileNetV2's depthwise 3x3 layers: (channels, input size, stride).
        let mobilenet: Vec<ConvCase> = [
            (96, 56, 1),
            (144, 56, 2),
            (192, 28, 1),
            (384, 14, 1),
            (960, 7, 1),
        ]
        .into_iter()
        .map(|(c, size, stride)| {
            let out = (size - 1) / stride + 1;
            conv(
                format!("dw3x3 C={c} {size}->{out}"),
                [n, c, size, size],
                [c, 1, 3, 3],
                stride,
                1,
                1,
            )
        })
        .collect();
        let title = format!("depthwise conv2d (groups = C): MobileNetV2 shapes, batch {n}");
        let t = conv_table(&b, &title, &mobilenet, peak);
        println!(
            "MobileNetV2 depthwise layers, forward+backward: candle {:.0} ms, ember {:.1} ms, ratio {:.1}x",
            t.candle_train * 1e3,
            t.ember_train * 1e3,
            t.candle_train / t.ember_train
        );
    }

    if wanted("norm") {
        norm_tables(&b);
    }
    if wanted("softmax") {
        softmax_table(&b);
    }
    if wanted("pool") {
        pool_table(&b);
    }
}

type Reference = fn(&[Tensor]) -> candle_core::Result<Tensor>;

fn norm_tables(b: &Bench) {
    let ln = |x: &[usize], c: usize| vec![randn(x, 1), randn(&[c], 2), randn(&[c], 3)];
    let slow: Reference = |t| candle_nn::ops::layer_norm_slow(&t[0], &t[1], &t[2], 1e-5);
    let ours: Reference = |t| ember_ops::layer_norm(&t[0], Some(&t[1]), Some(&t[2]), 1e-5);
    let fused: Reference = |t| candle_nn::ops::layer_norm(&t[0], &t[1], &t[2], 1e-5);
    let channels_ref: Reference = |t| {
        let x = t[0].permute((0, 2, 3, 1))?;
        candle_nn::ops::layer_norm_slow(&x, &t[1], &t[2], 1e-6)?.permute((0, 3, 1, 2))
    };
    let channels: Reference =
        |t| ember_ops::layer_norm_channels(&t[0], Some(&t[1]), Some(&t[2]), 1e-6);
    let unfused = [
        case(
            "[64x197, 192] ViT-T tokens",
            ln(&[64, 197, 192], 192),
            Box::new(slow),
            true,
            Box::new(ours),
        ),
        case(
            "[64x49, 384] LightViT stage 3",
            ln(&[64, 49, 384], 384),
            Box::new(slow),
            true,
            Box::new(ours),
        ),
        case(
            "[32x784, 64] LightViT stage 1",
            ln(&[32, 784, 64], 64),
            Box::new(slow),
            true,
            Box::new(ours),
        ),
        case(
            "[32, 64, 56, 56] channels-first",
            ln(&[32, 64, 56, 56], 64),
            Box::new(channels_ref),
            true,
            Box::new(channels),
        ),
    ];
    op_table(
        b,
        "layer norm",
        "candle_nn::ops::layer_norm_slow, the unfused composition that has a backward",
        &unfused,
    );
    let fused_cases = [case(
        "[64x197, 192] ViT-T tokens",
        ln(&[64, 197, 192], 192),
        Box::new(fused),
        false,
        Box::new(ours),
    )];
    op_table(
        b,
        "layer norm",
        "candle_nn::ops::layer_norm, fused, forward only (records no gradient)",
        &fused_cases,
    );
}

fn softmax_table(b: &Bench) {
    let reference: Reference = |t| candle_nn::ops::softmax(&t[0], D::Minus1);
    let ours: Reference = |t| ember_ops::softmax(&t[0], D::Minus1);
    let cases = [
        case(
            "[64, 4, 49, 49] attention",
            vec![randn(&[64, 4, 49, 49], 1)],
            Box::new(reference),
            true,
            Box::new(ours),
        ),
        case(
            "[256, 1000] logits",
            vec![randn(&[256, 1000], 1)],
            Box::new(reference),
            true,
            Box::new(ours),
        ),
    ];
    op_table(
        b,
        "softmax",
        "candle_nn::ops::softmax (softmax_last_dim records no gradient)",
        &cases,
    );
}

fn pool_table(b: &Bench) {
    use ember_ops::{AvgPool2dParams, MaxPool2dParams, Resize};
    let x = || vec![randn(&[32, 64, 56, 56], 1)];
    let cases = [
        case(
            "max 3x3 s2 p1 [32,64,56,56] (stem)",
            x(),
            Box::new(|t| {
                t[0].pad_with_same(2, 1, 1)?
                    .pad_with_same(3, 1, 1)?
                    .max_pool2d_with_stride(3, 2)
            }),
            false,
            Box::new(|t| {
                ember_ops::max_pool2d(&t[0], MaxPool2dParams::new(3).stride(2).padding(1))
            }),
        ),
        case(
            "max 2x2 [32,64,56,56]",
            x(),
            Box::new(|t| t[0].max_pool2d(2)),
            true,
            Box::new(|t| ember_ops::max_pool2d(&t[0], MaxPool2dParams::new(2))),
        ),
        case(
            "avg 2x2 [32,64,56,56]",
            x(),
            Box::new(|t| t[0].avg_pool2d(2)),
            true,
            Box::new(|t| ember_ops::avg_pool2d(&t[0], AvgPool2dParams::new(2))),
        ),
        case(
            "avg 3x3 s1 p1 [32,64,56,56]",
            x(),
            Box::new(|t| {
                t[0].pad_with_zeros(2, 1, 1)?
                    .pad_with_zeros(3, 1, 1)?
                    .avg_pool2d_with_stride(3, 1)
            }),
            false,
            Box::new(|t| {
                ember_ops::avg_pool2d(&t[0], AvgPool2dParams::new(3).stride(1).padding(1))
            }),
        ),
        case(
            "global avg [128,512,4,4]",
            vec![randn(&[128, 512, 4, 4], 1)],
            Box::new(|t| t[0].mean_keepdim(3)?.mean_keepdim(2)),
            true,
            Box::new(|t| ember_ops::adaptive_avg_pool2d(&t[0], 1)),
        ),
        case(
            "bilinear x2 [8,64,28,28]",
            vec![randn(&[8, 64, 28, 28], 1)],
            Box::new(|t| t[0].upsample_bilinear2d(56, 56, false)),
            false,
            Box::new(|t| ember_ops::upsample_bilinear2d(&t[0], Resize::Size(56, 56), false)),
        ),
        case(
            "nearest x2 [8,64,28,28]",
            vec![randn(&[8, 64, 28, 28], 1)],
            Box::new(|t| t[0].upsample_nearest2d(56, 56)),
            true,
            Box::new(|t| ember_ops::upsample_nearest2d(&t[0], Resize::Size(56, 56))),
        ),
    ];
    op_table(
        b,
        "pooling and upsampling",
        "candle's own op; for padded pools, candle pads first (no padding argument)",
        &cases,
    );
}
