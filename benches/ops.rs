//! Ember's ops against candle's own at ResNet, MobileNet and ViT shapes, on this machine.
//!
//! `cargo bench --bench ops` prints, per shape, the median time of the forward pass and of
//! forward + backward for candle and for Ember, the ratio candle/Ember (above 1: Ember is
//! faster), and for conv2d the achieved GFLOP/s against the CPU's fp32 peak
//! (threads x 32 FLOP/cycle x clock; 32 = two 256-bit FMA pipes, as on Zen 4 and most AVX2+
//! cores; override with EMBER_PEAK_GFLOPS). Set EMBER_BENCH_QUICK=1 for one short pass.

use std::time::Instant;

use candle_core::{DType, Device, Tensor, Var, D};
use ember_core::EmberRng;
use ember_ops::Conv2dParams;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    fn train(&self, baseline: &Op, ember: &Op, inputs: &[Tensor]) -> (f64, f64) {
        self.train_some(baseline, ember, inputs, &vec![true; inputs.len()])
    }

    /// Forward and backward to the inputs marked `true` (the others are data, like the image
    /// entering a network's stem).
    fn train_some(
        &self,
        baseline: &Op,
        ember: &Op,
        inputs: &[Tensor],
        trainable: &[bool],
    ) -> (f64, f64) {
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
        self.time_pair(|| step(baseline), || step(ember))
    }
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn randn(shape: &[usize], seed: u64) -> Tensor {
    EmberRng::new(seed)
        .normal_tensor(shape.to_vec(), 0.0, 1.0, DType::F32, &Device::Cpu)
        .unwrap()
}

fn ms(s: f64) -> String {
    format!("{:8.2}", s * 1e3)
}

/// Peak fp32 GFLOP/s of the threads this process uses.
fn peak_gflops() -> (f64, String) {
    if let Some(p) = std::env::var("EMBER_PEAK_GFLOPS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        return (p, "EMBER_PEAK_GFLOPS".into());
    }
    let mhz = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("cpu MHz"))
                .and_then(|l| l.split(':').nth(1)?.trim().parse::<f64>().ok())
        })
        .unwrap_or(2500.0);
    let threads = rayon::current_num_threads() as f64;
    (
        threads * 32.0 * mhz / 1e3,
        format!("{threads} threads x 32 FLOP/cycle x {mhz:.0} MHz"),
    )
}

struct ConvCase {
    name: &'static str,
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
        let (ct, et) = b.train_some(&candle, &ember, &inputs, &[c.input_grad, true]);
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
        let train = if c.baseline_trains {
            let (bt, et) = b.train(&c.baseline, &c.ember, &c.inputs);
            format!("{} {} {:>5.1}x", ms(bt), ms(et), bt / et)
        } else {
            let (_, et) = b.train(&c.ember, &c.ember, &c.inputs);
            format!("{:>8} {} {:>6}", "no bwd", ms(et), "-")
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

fn main() {
    let b = Bench {
        quick: std::env::var_os("EMBER_BENCH_QUICK").is_some(),
    };
    let (peak, how) = peak_gflops();
    println!(
        "fp32 peak: {peak:.0} GFLOP/s ({how}); rayon threads: {}",
        rayon::current_num_threads()
    );

    let n = 32;
    let resnet = [
        ConvCase {
            name: "stem 1->64 28x28",
            x: [n, 1, 28, 28],
            w: [64, 1, 3, 3],
            stride: 1,
            padding: 1,
            groups: 1,
            count: 1,
            input_grad: false,
        },
        ConvCase {
            name: "64->64 28x28",
            x: [n, 64, 28, 28],
            w: [64, 64, 3, 3],
            stride: 1,
            padding: 1,
            groups: 1,
            count: 4,
            input_grad: true,
        },
        ConvCase {
            name: "64->128 s2 28->14",
            x: [n, 64, 28, 28],
            w: [128, 64, 3, 3],
            stride: 2,
            padding: 1,
            groups: 1,
            count: 1,
            input_grad: true,
        },
        ConvCase {
            name: "1x1 64->128 s2",
            x: [n, 64, 28, 28],
            w: [128, 64, 1, 1],
            stride: 2,
            padding: 0,
            groups: 1,
            count: 1,
            input_grad: true,
        },
        ConvCase {
            name: "128->128 14x14",
            x: [n, 128, 14, 14],
            w: [128, 128, 3, 3],
            stride: 1,
            padding: 1,
            groups: 1,
            count: 3,
            input_grad: true,
        },
        ConvCase {
            name: "128->256 s2 14->7",
            x: [n, 128, 14, 14],
            w: [256, 128, 3, 3],
            stride: 2,
            padding: 1,
            groups: 1,
            count: 1,
            input_grad: true,
        },
        ConvCase {
            name: "1x1 128->256 s2",
            x: [n, 128, 14, 14],
            w: [256, 128, 1, 1],
            stride: 2,
            padding: 0,
            groups: 1,
            count: 1,
            input_grad: true,
        },
        ConvCase {
            name: "256->256 7x7",
            x: [n, 256, 7, 7],
            w: [256, 256, 3, 3],
            stride: 1,
            padding: 1,
            groups: 1,
            count: 3,
            input_grad: true,
        },
        ConvCase {
            name: "256->512 s2 7->4",
            x: [n, 256, 7, 7],
            w: [512, 256, 3, 3],
            stride: 2,
            padding: 1,
            groups: 1,
            count: 1,
            input_grad: true,
        },
        ConvCase {
            name: "1x1 256->512 s2",
            x: [n, 256, 7, 7],
            w: [512, 256, 1, 1],
            stride: 2,
            padding: 0,
            groups: 1,
            count: 1,
            input_grad: true,
        },
        ConvCase {
            name: "512->512 4x4",
            x: [n, 512, 4, 4],
            w: [512, 512, 3, 3],
            stride: 1,
            padding: 1,
            groups: 1,
            count: 3,
            input_grad: true,
        },
    ];
    let t = conv_table(
        &b,
        &format!("conv2d: ResNet-18 with the small-image stem at 28x28, batch {n}"),
        &resnet,
        peak,
    );
    let gflops = t.flops / t.ember_train / 1e9;
    println!(
        "ResNet-18 convs, forward+backward of one batch: candle {:.0} ms, ember {:.0} ms, ratio {:.1}x, ember {:.0} GFLOP/s = {:.0}% of peak",
        t.candle_train * 1e3, t.ember_train * 1e3, t.candle_train / t.ember_train, gflops, 100.0 * gflops / peak
    );

    let n = 8;
    let mobilenet = [
        ConvCase {
            name: "dw3x3 C=96 56x56",
            x: [n, 96, 56, 56],
            w: [96, 1, 3, 3],
            stride: 1,
            padding: 1,
            groups: 96,
            count: 1,
            input_grad: true,
        },
        ConvCase {
            name: "dw3x3 C=144 56->28 s2",
            x: [n, 144, 56, 56],
            w: [144, 1, 3, 3],
            stride: 2,
            padding: 1,
            groups: 144,
            count: 1,
            input_grad: true,
        },
        ConvCase {
            name: "dw3x3 C=192 28x28",
            x: [n, 192, 28, 28],
            w: [192, 1, 3, 3],
            stride: 1,
            padding: 1,
            groups: 192,
            count: 1,
            input_grad: true,
        },
        ConvCase {
            name: "dw3x3 C=384 14x14",
            x: [n, 384, 14, 14],
            w: [384, 1, 3, 3],
            stride: 1,
            padding: 1,
            groups: 384,
            count: 1,
            input_grad: true,
        },
        ConvCase {
            name: "dw3x3 C=960 7x7",
            x: [n, 960, 7, 7],
            w: [960, 1, 3, 3],
            stride: 1,
            padding: 1,
            groups: 960,
            count: 1,
            input_grad: true,
        },
    ];
    let t = conv_table(
        &b,
        &format!("depthwise conv2d (groups = C): MobileNetV2 shapes, batch {n}"),
        &mobilenet,
        peak,
    );
    println!(
        "MobileNet depthwise layers, forward+backward: candle {:.0} ms, ember {:.1} ms, ratio {:.1}x",
        t.candle_train * 1e3, t.ember_train * 1e3, t.candle_train / t.ember_train
    );

    let ln = |x: &[usize], c: usize| vec![randn(x, 1), randn(&[c], 2), randn(&[c], 3)];
    let slow: fn(&[Tensor]) -> candle_core::Result<Tensor> =
        |t| candle_nn::ops::layer_norm_slow(&t[0], &t[1], &t[2], 1e-5);
    let ours: fn(&[Tensor]) -> candle_core::Result<Tensor> =
        |t| ember_ops::layer_norm(&t[0], Some(&t[1]), Some(&t[2]), 1e-5);
    let fused: fn(&[Tensor]) -> candle_core::Result<Tensor> =
        |t| candle_nn::ops::layer_norm(&t[0], &t[1], &t[2], 1e-5);
    let channels_ref: fn(&[Tensor]) -> candle_core::Result<Tensor> = |t| {
        let x = t[0].permute((0, 2, 3, 1))?;
        candle_nn::ops::layer_norm_slow(&x, &t[1], &t[2], 1e-6)?.permute((0, 3, 1, 2))
    };
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
            Box::new(|t| ember_ops::layer_norm_channels(&t[0], Some(&t[1]), Some(&t[2]), 1e-6)),
        ),
    ];
    op_table(
        &b,
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
        &b,
        "layer norm",
        "candle_nn::ops::layer_norm, fused, forward only (records no gradient)",
        &fused_cases,
    );

    let softmax = [
        case(
            "[64, 4, 49, 49] attention",
            vec![randn(&[64, 4, 49, 49], 1)],
            Box::new(|t| candle_nn::ops::softmax(&t[0], D::Minus1)),
            true,
            Box::new(|t| ember_ops::softmax(&t[0], D::Minus1)),
        ),
        case(
            "[256, 1000] logits",
            vec![randn(&[256, 1000], 1)],
            Box::new(|t| candle_nn::ops::softmax(&t[0], D::Minus1)),
            true,
            Box::new(|t| ember_ops::softmax(&t[0], D::Minus1)),
        ),
    ];
    op_table(
        &b,
        "softmax",
        "candle_nn::ops::softmax (softmax_last_dim records no gradient)",
        &softmax,
    );

    use ember_ops::{AvgPool2dParams, MaxPool2dParams, Resize};
    let x = || vec![randn(&[32, 64, 56, 56], 1)];
    let pools = [
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
        &b,
        "pooling and upsampling",
        "candle's own op; for padded pools, candle pads first (no padding argument)",
        &pools,
    );
}
