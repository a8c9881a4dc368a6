//! Every op's forward (and gradients) against an independent reference: candle's own op
//! where candle gets it right, or the definition written out element by element; and the
//! CPU kernels against the composed path, in f32 and f64.

mod common;

use candle_core::{DType, Device, Tensor, D};
use common::*;
use ember_ops::conv::composed as conv_ref;
use ember_ops::*;

fn t(values: &[f64], shape: &[usize]) -> Tensor {
    Tensor::from_slice(values, shape, &Device::Cpu).unwrap()
}

fn values(x: &Tensor) -> Vec<f64> {
    x.to_dtype(DType::F64)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

#[test]
fn conv2d_matches_candle_where_candle_is_right() {
    // candle: square stride/padding/dilation, same-parity (here square) inputs.
    for (x, w, stride, padding, dilation, groups) in [
        ([2, 3, 9, 9], [5, 3, 3, 3], 1, 1, 1, 1),
        ([2, 4, 8, 8], [6, 2, 3, 3], 2, 1, 1, 2),
        ([1, 2, 11, 11], [3, 2, 3, 3], 1, 2, 2, 1),
        ([3, 6, 7, 7], [4, 6, 1, 1], 1, 0, 1, 1),
        ([2, 8, 10, 10], [8, 1, 3, 3], 2, 1, 1, 8),
        // 3x3, stride 1, 16+ channels, paddings 0 to 2.
        ([2, 16, 9, 9], [24, 16, 3, 3], 1, 1, 1, 1),
        ([1, 32, 7, 7], [16, 32, 3, 3], 1, 0, 1, 1),
        ([3, 16, 4, 4], [16, 16, 3, 3], 1, 2, 1, 1),
    ] {
        let inputs = [randn(&x, 1, DType::F64), randn(&w, 2, DType::F64)];
        let p = Conv2dParams::default()
            .stride(stride)
            .padding(padding)
            .dilation(dilation)
            .groups(groups);
        assert_same_op(
            &inputs,
            1e-10,
            &format!("conv2d {x:?} {w:?} {p:?}"),
            |t| conv2d(&t[0], &t[1], p),
            |t| t[0].conv2d(&t[1], padding, stride, dilation, groups),
        );
    }
}

#[test]
fn conv_transpose_and_1d_match_candle() {
    let inputs = [
        randn(&[2, 4, 5, 5], 1, DType::F64),
        randn(&[4, 3, 3, 3], 2, DType::F64),
    ];
    let p = Conv2dParams::default().stride(2).padding(1);
    assert_same_op(
        &inputs,
        1e-10,
        "conv_transpose2d",
        |t| conv_transpose2d(&t[0], &t[1], p, 1),
        |t| t[0].conv_transpose2d(&t[1], 1, 1, 2, 1),
    );
    // candle's conv1d gradients are wrong for batches of more than one (tests/candle_failures.rs)
    // and its conv_transpose1d has no backward: compare the forwards, and the gradients at batch 1.
    let (x, w) = (
        randn(&[2, 4, 13], 3, DType::F64),
        randn(&[6, 2, 3], 4, DType::F64),
    );
    let p1 = Conv1dParams {
        stride: 2,
        padding: 1,
        dilation: 1,
        groups: 2,
    };
    assert_close(
        &conv1d(&x, &w, p1).unwrap(),
        &x.conv1d(&w, 1, 2, 1, 2).unwrap(),
        1e-10,
        "conv1d",
    );
    let inputs = [x.narrow(0, 0, 1).unwrap(), w];
    assert_same_op(
        &inputs,
        1e-10,
        "conv1d batch 1",
        |t| conv1d(&t[0], &t[1], p1),
        |t| t[0].conv1d(&t[1], 1, 2, 1, 2),
    );
    let (x, w) = (
        randn(&[2, 3, 7], 5, DType::F64),
        randn(&[3, 4, 3], 6, DType::F64),
    );
    let p1 = Conv1dParams {
        stride: 2,
        ..Default::default()
    };
    assert_close(
        &conv_transpose1d(&x, &w, p1, 1).unwrap(),
        &x.conv_transpose1d(&w, 0, 1, 2, 1, 1).unwrap(),
        1e-10,
        "conv_transpose1d",
    );
}

#[test]
fn conv_kernels_match_the_composition_in_f32_and_f64() {
    let mut c = Cases::new(11);
    for i in 0..12 {
        let (x, w, p) = random_conv(&mut c, i % 3 == 2, 25);
        // The output padding that makes the transposed conv map back onto x's size.
        let out_pad: [usize; 2] = std::array::from_fn(|a| {
            (x[2 + a] + 2 * p.padding[a] - p.dilation[a] * (w[2 + a] - 1) - 1) % p.stride[a]
        });
        for (dtype, tol) in [(DType::F64, 1e-10), (DType::F32, 1e-4)] {
            let inputs = [randn(&x, c.seed(), dtype), randn(&w, c.seed(), dtype)];
            let what = format!("conv2d {dtype:?} {x:?} {w:?} {p:?}");
            assert_same_op(
                &inputs,
                tol,
                &what,
                |t| conv2d(&t[0], &t[1], p),
                |t| conv_ref::conv2d(&t[0], &t[1], p),
            );
            let y = conv2d(&inputs[0], &inputs[1], p).unwrap();
            let inputs = [randn(y.dims(), c.seed(), dtype), inputs[1].clone()];
            assert_same_op(
                &inputs,
                tol,
                &format!("transposed {what}"),
                |t| conv_transpose2d(&t[0], &t[1], p, out_pad),
                |t| conv_ref::conv_transpose2d(&t[0], &t[1], p, out_pad),
            );
        }
    }
}

#[test]
fn large_convs_match_the_composition() {
    // Sizes that exercise the multi-tile and multi-image tiling paths.
    for (x, w, stride) in [
        ([2, 16, 40, 40], [8, 16, 3, 3], 1),
        ([9, 32, 5, 5], [16, 32, 3, 3], 1),
        ([3, 8, 33, 31], [12, 8, 3, 3], 2),
    ] {
        let inputs = [randn(&x, 1, DType::F32), randn(&w, 2, DType::F32)];
        let p = Conv2dParams::default().padding(1).stride(stride);
        assert_same_op(
            &inputs,
            2e-4,
            &format!("conv2d {x:?}"),
            |t| conv2d(&t[0], &t[1], p),
            |t| conv_ref::conv2d(&t[0], &t[1], p),
        );
    }
}

#[test]
fn layer_norm_matches_candle_slow_and_fused() {
    let x = randn(&[6, 33], 1, DType::F32);
    let (g, b) = (randn(&[33], 2, DType::F32), randn(&[33], 3, DType::F32));
    let ours = layer_norm(&x, Some(&g), Some(&b), 1e-5).unwrap();
    let fused = candle_nn::ops::layer_norm(&x, &g, &b, 1e-5).unwrap();
    assert_close(&ours, &fused, 1e-5, "vs candle fused forward");
    let inputs = [x, g, b];
    assert_same_op(
        &inputs,
        1e-5,
        "layer_norm vs layer_norm_slow",
        |t| layer_norm(&t[0], Some(&t[1]), Some(&t[2]), 1e-5),
        |t| candle_nn::ops::layer_norm_slow(&t[0], &t[1], &t[2], 1e-5),
    );
    let inputs = [
        randn(&[2, 5, 37, 11], 4, DType::F64),
        randn(&[5], 5, DType::F64),
        randn(&[5], 6, DType::F64),
    ];
    assert_same_op(
        &inputs,
        1e-10,
        "layer_norm_channels",
        |t| layer_norm_channels(&t[0], Some(&t[1]), Some(&t[2]), 1e-6),
        |t| norm::composed::layer_norm_channels(&t[0], Some(&t[1]), Some(&t[2]), 1e-6),
    );
    // Channels-first equals last-dim layer norm on the permuted tensor.
    let x = &inputs[0];
    let a = layer_norm_channels(x, None, None, 1e-6).unwrap();
    let b = layer_norm(&x.permute((0, 2, 3, 1)).unwrap(), None, None, 1e-6)
        .unwrap()
        .permute((0, 3, 1, 2))
        .unwrap();
    assert_close(&a, &b, 1e-12, "channels-first vs permuted");
}

#[test]
fn softmax_matches_candle() {
    let x = randn(&[4, 3, 50], 1, DType::F32);
    assert_close(
        &softmax(&x, D::Minus1).unwrap(),
        &candle_nn::ops::softmax_last_dim(&x).unwrap(),
        1e-6,
        "vs softmax_last_dim",
    );
    for dim in 0..3 {
        assert_same_op(
            std::slice::from_ref(&x),
            1e-6,
            &format!("softmax dim {dim}"),
            |t| softmax(&t[0], dim),
            |t| candle_nn::ops::softmax(&t[0], dim),
        );
    }
    // A NaN makes its whole row NaN, as in PyTorch; other rows are untouched.
    let with_nan = t(&[1.0, f64::NAN, 0.0, 1.0, 2.0, 3.0], &[2, 3]);
    let y = values(&softmax(&with_nan.to_dtype(DType::F32).unwrap(), 1).unwrap());
    assert!(
        y[..3].iter().all(|v| v.is_nan()) && y[3..].iter().all(|v| v.is_finite()),
        "{y:?}"
    );
    // Large logits stay finite.
    let big = t(&[1000.0, 0.0, -1000.0], &[1, 3]);
    assert_eq!(values(&softmax(&big, 1).unwrap()), [1.0, 0.0, 0.0]);
}

/// Max pooling by definition: the maximum over the window's in-image taps.
fn naive_max_pool(
    x: &[f64],
    h: usize,
    w: usize,
    p: &MaxPool2dParams,
    ho: usize,
    wo: usize,
) -> Vec<f64> {
    let mut y = vec![f64::NEG_INFINITY; ho * wo];
    for oh in 0..ho {
        for ow in 0..wo {
            for ki in 0..p.kernel[0] {
                for kj in 0..p.kernel[1] {
                    let ih =
                        (oh * p.stride[0] + ki * p.dilation[0]) as isize - p.padding[0] as isize;
                    let iw =
                        (ow * p.stride[1] + kj * p.dilation[1]) as isize - p.padding[1] as isize;
                    if ih >= 0 && iw >= 0 && (ih as usize) < h && (iw as usize) < w {
                        y[oh * wo + ow] = y[oh * wo + ow].max(x[ih as usize * w + iw as usize]);
                    }
                }
            }
        }
    }
    y
}

#[test]
fn max_pool2d_matches_the_definition_and_candle() {
    let x = randn(&[2, 3, 12, 10], 1, DType::F32);
    assert_close(
        &max_pool2d(&x, MaxPool2dParams::new(2)).unwrap(),
        &x.max_pool2d(2).unwrap(),
        0.0,
        "vs candle 2x2",
    );
    assert_close(
        &max_pool2d(&x, MaxPool2dParams::new(3).stride(2)).unwrap(),
        &x.max_pool2d_with_stride(3, 2).unwrap(),
        0.0,
        "vs candle 3/2",
    );
    let mut c = Cases::new(12);
    for _ in 0..12 {
        let k = (c.int(1, 3), c.int(1, 3));
        let p = MaxPool2dParams::new(k)
            .stride((c.int(1, 3), c.int(1, 2)))
            .padding((c.int(0, k.0 / 2), c.int(0, k.1 / 2)))
            .ceil_mode(c.coin());
        let (h, w) = (c.int(3, 9), c.int(3, 9));
        let x = randn(&[1, 1, h, w], c.seed(), DType::F64);
        let y = max_pool2d(&x, p).unwrap();
        let (ho, wo) = (y.dim(2).unwrap(), y.dim(3).unwrap());
        assert_eq!(
            values(&y),
            naive_max_pool(&values(&x), h, w, &p, ho, wo),
            "{p:?} {h}x{w}"
        );
        assert_same_op(
            &[distinct(&[2, 2, h, w], c.seed(), DType::F32)],
            1e-6,
            &format!("max_pool2d {p:?}"),
            |t| max_pool2d(&t[0], p),
            |t| pool::composed::max_pool2d(&t[0], p),
        );
    }
}

#[test]
fn max_pool2d_gradient_goes_to_the_first_maximum() {
    // A tie: PyTorch routes the gradient to the first maximum in scan order.
    let x = candle_core::Var::from_tensor(&t(&[1.0, 5.0, 5.0, 2.0], &[1, 1, 2, 2])).unwrap();
    let grads = max_pool2d(x.as_tensor(), MaxPool2dParams::new(2))
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    assert_eq!(values(grads.get(&x).unwrap()), [0.0, 1.0, 0.0, 0.0]);
}

/// `avg_pool2d` by definition (torch's CPU kernel, element by element).
fn naive_avg_pool(
    x: &[f64],
    h: usize,
    w: usize,
    p: &AvgPool2dParams,
    ho: usize,
    wo: usize,
) -> Vec<f64> {
    let mut y = vec![0.0; ho * wo];
    for oh in 0..ho {
        for ow in 0..wo {
            let hs = (oh * p.stride[0]) as isize - p.padding[0] as isize;
            let ws = (ow * p.stride[1]) as isize - p.padding[1] as isize;
            let he = (hs + p.kernel[0] as isize).min((h + p.padding[0]) as isize);
            let we = (ws + p.kernel[1] as isize).min((w + p.padding[1]) as isize);
            let pool_size = (he - hs) * (we - ws);
            let (hs, ws, he, we) = (hs.max(0), ws.max(0), he.min(h as isize), we.min(w as isize));
            let mut sum = 0.0;
            for ih in hs..he {
                for iw in ws..we {
                    sum += x[ih as usize * w + iw as usize];
                }
            }
            let divisor = match p.divisor_override {
                Some(d) => d as isize,
                None if p.count_include_pad => pool_size,
                None => (he - hs) * (we - ws),
            };
            y[oh * wo + ow] = sum / divisor as f64;
        }
    }
    y
}

#[test]
fn avg_pool2d_matches_the_definition_and_candle() {
    let x = randn(&[2, 3, 12, 10], 1, DType::F32);
    assert_close(
        &avg_pool2d(&x, AvgPool2dParams::new(2)).unwrap(),
        &x.avg_pool2d(2).unwrap(),
        1e-6,
        "vs candle",
    );
    let mut c = Cases::new(13);
    for i in 0..16 {
        let p = random_avg_pool(&mut c, i % 4 == 0);
        let k = (p.kernel[0], p.kernel[1]);
        let (h, w) = (k.0 + c.int(0, 6), k.1 + c.int(0, 6));
        let x = randn(&[1, 1, h, w], c.seed(), DType::F64);
        let y = avg_pool2d(&x, p).unwrap();
        let want = naive_avg_pool(&values(&x), h, w, &p, y.dim(2).unwrap(), y.dim(3).unwrap());
        for (a, b) in values(&y).iter().zip(&want) {
            assert!((a - b).abs() < 1e-12, "{p:?} {h}x{w}: {a} vs {b}");
        }
        let xs = randn(&[2, 3, h, w], c.seed(), DType::F32);
        assert_same_op(
            &[xs],
            1e-5,
            &format!("avg_pool2d {p:?}"),
            |t| avg_pool2d(&t[0], p),
            |t| pool::composed::avg_pool2d(&t[0], p),
        );
    }
}

#[test]
fn adaptive_avg_pool2d_matches_the_definition() {
    // 5 -> 3: windows [0, 2), [1, 4), [3, 5).
    let x = t(&[1.0, 2.0, 3.0, 4.0, 5.0], &[1, 1, 1, 5]);
    let y = values(&adaptive_avg_pool2d(&x, (1, 3)).unwrap());
    assert_eq!(y, [1.5, 3.0, 4.5]);
    let x = randn(&[4, 8, 7, 5], 1, DType::F32);
    let global = x.mean_keepdim(3).unwrap().mean_keepdim(2).unwrap();
    assert_close(
        &adaptive_avg_pool2d(&x, 1).unwrap(),
        &global,
        1e-6,
        "global average",
    );
    assert_same_op(
        &[x],
        1e-5,
        "adaptive 3x4",
        |t| adaptive_avg_pool2d(&t[0], (3, 4)),
        |t| pool::composed::adaptive_avg_pool2d(&t[0], (3, 4)),
    );
}

#[test]
fn upsampling_matches_pytorch_values() {
    let x = t(&[1.0, 2.0], &[1, 1, 1, 2]);
    // torch.nn.functional.interpolate(x, size=(1, 4), mode="bilinear", align_corners=...)
    assert_eq!(
        values(&upsample_bilinear2d(&x, Resize::Size(1, 4), false).unwrap()),
        [1.0, 1.25, 1.75, 2.0]
    );
    let aligned = values(&upsample_bilinear2d(&x, Resize::Size(1, 4), true).unwrap());
    for (a, b) in aligned.iter().zip([1.0, 4.0 / 3.0, 5.0 / 3.0, 2.0]) {
        assert!((a - b).abs() < 1e-12);
    }
    // Downsampling 4 -> 2 averages neighbours (source coordinates 0.5 and 2.5).
    let x4 = t(&[1.0, 3.0, 5.0, 11.0], &[1, 1, 1, 4]);
    assert_eq!(
        values(&upsample_bilinear2d(&x4, Resize::Size(1, 2), false).unwrap()),
        [2.0, 8.0]
    );
    // nearest 3 -> 5 reads floor(o * 3 / 5) = 0, 0, 1, 1, 2.
    let x3 = t(&[1.0, 2.0, 3.0], &[1, 1, 1, 3]);
    assert_eq!(
        values(&upsample_nearest2d(&x3, Resize::Size(1, 5)).unwrap()),
        [1.0, 1.0, 2.0, 2.0, 3.0]
    );
    // scale_factor 2.5 on 2 -> 5 uses 1 / 2.5 for the source: floor(o * 0.4) = 0, 0, 0, 1, 1.
    let x2 = t(&[1.0, 2.0], &[1, 1, 1, 2]);
    assert_eq!(
        values(&upsample_nearest2d(&x2, Resize::Scale(1.0, 2.5)).unwrap()),
        [1.0, 1.0, 1.0, 2.0, 2.0]
    );
}

#[test]
fn upsampling_matches_candle_and_the_composition() {
    let x = randn(&[2, 3, 5, 7], 1, DType::F32);
    assert_close(
        &upsample_nearest2d(&x, Resize::Size(10, 14)).unwrap(),
        &x.upsample_nearest2d(10, 14).unwrap(),
        0.0,
        "nearest x2 vs candle",
    );
    for align in [false, true] {
        assert_close(
            &upsample_bilinear2d(&x, Resize::Size(9, 4), align).unwrap(),
            &x.upsample_bilinear2d(9, 4, align).unwrap(),
            1e-5,
            "bilinear vs candle",
        );
    }
    let mut c = Cases::new(14);
    for _ in 0..8 {
        let size = Resize::Size(c.int(1, 17), c.int(1, 17));
        let align = c.coin();
        assert_same_op(
            std::slice::from_ref(&x),
            1e-5,
            &format!("bilinear {size:?} {align}"),
            |t| upsample_bilinear2d(&t[0], size, align),
            |t| upsample::composed::upsample_bilinear2d(&t[0], size, align),
        );
        assert_same_op(
            std::slice::from_ref(&x),
            1e-5,
            &format!("nearest {size:?}"),
            |t| upsample_nearest2d(&t[0], size),
            |t| upsample::composed::upsample_nearest2d(&t[0], size),
        );
    }
}

#[test]
fn half_precision_inputs_run_through_f32() {
    let x = randn(&[2, 4, 6, 6], 1, DType::F32);
    let w = randn(&[4, 4, 3, 3], 2, DType::F32);
    let p = Conv2dParams::default().padding(1);
    for dtype in [DType::F16, DType::BF16] {
        let (xh, wh) = (x.to_dtype(dtype).unwrap(), w.to_dtype(dtype).unwrap());
        let y = conv2d(&xh, &wh, p).unwrap();
        assert_eq!(y.dtype(), dtype);
        let want = conv2d(
            &xh.to_dtype(DType::F32).unwrap(),
            &wh.to_dtype(DType::F32).unwrap(),
            p,
        )
        .unwrap();
        assert_close(&y, &want, 0.1, "conv2d in half precision");
        assert_eq!(softmax(&xh, 3).unwrap().dtype(), dtype);
        assert_eq!(layer_norm(&xh, None, None, 1e-5).unwrap().dtype(), dtype);
        assert_eq!(
            max_pool2d(&xh, MaxPool2dParams::new(2)).unwrap().dtype(),
            dtype
        );
        assert_eq!(
            avg_pool2d(&xh, AvgPool2dParams::new(2)).unwrap().dtype(),
            dtype
        );
    }
}

#[test]
fn bad_shapes_are_errors_not_panics() {
    let x = randn(&[1, 3, 8, 8], 1, DType::F32);
    let e = conv2d(
        &x,
        &randn(&[4, 2, 3, 3], 2, DType::F32),
        Conv2dParams::default(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("input has 3 channels"), "{e}");
    assert!(conv2d(
        &randn(&[3, 8, 8], 1, DType::F32),
        &randn(&[4, 3, 3, 3], 2, DType::F32),
        Conv2dParams::default()
    )
    .is_err());
    assert!(max_pool2d(&x, MaxPool2dParams::new(3).padding(2)).is_err());
    assert!(max_pool2d(&randn(&[8], 1, DType::F32), MaxPool2dParams::new(2)).is_err());
    assert!(avg_pool2d(&x, AvgPool2dParams::new(9)).is_err());
    assert!(layer_norm(&x, Some(&randn(&[7], 1, DType::F32)), None, 1e-5).is_err());
    assert!(adaptive_avg_pool2d(&x, (0, 2)).is_err());
    assert!(upsample_bilinear2d(&x, Resize::Scale(-1.0, 2.0), false).is_err());
    assert!(conv_transpose2d(
        &x,
        &randn(&[3, 2, 3, 3], 2, DType::F32),
        Conv2dParams::default().stride(2),
        2
    )
    .is_err());
}

#[test]
fn batch_norm_matches_candle_and_the_composition() {
    use candle_nn::ModuleT;
    let x = randn(&[4, 6, 5, 7], 1, DType::F32);
    let vm = candle_nn::VarMap::new();
    let vb = candle_nn::VarBuilder::from_varmap(&vm, DType::F32, &candle_core::Device::Cpu);
    let bn = candle_nn::batch_norm(6, 1e-5, vb).unwrap();
    let theirs = bn.forward_t(&x, true).unwrap();
    let (m, v) = batch_stats(&x).unwrap();
    let ones = Tensor::ones(6, DType::F32, x.device()).unwrap();
    let zeros = ones.zeros_like().unwrap();
    let ours = batch_norm(
        &x,
        &m,
        &v,
        Some(&ones),
        Some(&zeros),
        1e-5,
        BatchNormMode::Train,
    )
    .unwrap();
    assert_close(&ours, &theirs, 1e-5, "train forward vs candle");
    let inputs = [x, randn(&[6], 2, DType::F32), randn(&[6], 3, DType::F32)];
    assert_same_op(
        &inputs,
        1e-4,
        "batch_norm train vs composed",
        |t| Ok(batch_norm_train(&t[0], Some(&t[1]), Some(&t[2]), 1e-5)?.0),
        |t| {
            let (m, v) = batch_stats(&t[0])?;
            let (w, b) = (Some(&t[1]), Some(&t[2]));
            batch_norm::composed::normalise(&t[0], &m, &v, w, b, 1e-5, BatchNormMode::Train)
        },
    );
}

#[test]
fn gelu_matches_candle_in_f32_and_f64() {
    for dtype in [DType::F32, DType::F64] {
        let x = (randn(&[7, 300], 3, dtype) * 3.0).unwrap();
        // f32 approximates erf to 1.5e-7; f64 is exact, but candle's backward rounds
        // 1/sqrt(2 pi) to 0.398942 (an error of 4e-7 at |x| ~ 1).
        let tol = if dtype == DType::F32 { 2e-6 } else { 1e-6 };
        assert_same_op(
            std::slice::from_ref(&x),
            tol,
            &format!("gelu {dtype:?}"),
            |t| gelu(&t[0]),
            |t| t[0].gelu_erf(),
        );
    }
}

#[test]
fn broadcast_ops_match_candle_on_large_shapes() {
    for (a, b) in [
        (vec![700, 96], vec![96]),
        (vec![4, 70, 64], vec![4, 1, 64]),
        (vec![4, 70, 64], vec![4, 70, 1]),
        (vec![1, 3000, 8], vec![8]),
    ] {
        let inputs = [randn(&a, 7, DType::F32), randn(&b, 8, DType::F32)];
        let what = format!("{a:?} by {b:?}");
        // b's gradient sums up to 3000 f32 terms in another order than candle: 1e-4 abs.
        assert_same_op(
            &inputs,
            5e-4,
            &format!("add {what}"),
            |t| broadcast_add(&t[0], &t[1]),
            |t| t[0].broadcast_add(&t[1]),
        );
        assert_same_op(
            &inputs,
            5e-4,
            &format!("mul {what}"),
            |t| broadcast_mul(&t[0], &t[1]),
            |t| t[0].broadcast_mul(&t[1]),
        );
    }
}

#[test]
fn sum_keepdim_matches_candle() {
    let x = randn(&[6, 70, 64], 9, DType::F32);
    for dim in 0..3 {
        assert_same_op(
            std::slice::from_ref(&x),
            1e-4,
            &format!("sum_keepdim dim {dim}"),
            |t| sum_keepdim(&t[0], dim),
            |t| t[0].sum_keepdim(dim),
        );
    }
}
