//! Every op's gradient against central finite differences in f64, on seeded random shapes
//! (odd and non-square sizes, strides, padding, dilation, groups), through both the CPU
//! kernels and the composed path that CUDA and Metal tensors take.
//!
//! `tests/coverage.rs` fails if an op's name (its `CustomOp::name`) does not appear in a
//! `check(...)` call here: a new op cannot be added without joining this suite.

mod common;

use std::sync::Arc;

use candle_core::{DType, Result, Tensor};
use common::*;
use ember_ops::conv::composed as conv_ref;
use ember_ops::gradcheck::GradCheck;
use ember_ops::sync_batch_norm::{batch_norm_train_synced, RankSum};
use ember_ops::*;

/// Gradient-checks `f` on `inputs` and names the op and the case on failure.
fn check(op: &str, case: &str, inputs: &[Tensor], f: impl Fn(&[Tensor]) -> Result<Tensor>) {
    if let Err(e) = GradCheck::default().run(inputs, f) {
        panic!("{op} [{case}]: {e}");
    }
}

fn f64s(shape: &[usize], seed: u64) -> Tensor {
    randn(shape, seed, DType::F64)
}

#[test]
fn conv2d_on_random_geometries() {
    let mut c = Cases::new(1);
    for i in 0..24 {
        let (xd, wd, p) = random_conv(&mut c, false, 5);
        let case = format!("#{i} x {xd:?} w {wd:?} {p:?}");
        let inputs = [f64s(&xd, c.seed()), f64s(&wd, c.seed())];
        check("ember.conv2d", &case, &inputs, |t| conv2d(&t[0], &t[1], p));
        check("composed conv2d", &case, &inputs, |t| {
            conv_ref::conv2d(&t[0], &t[1], p)
        });
    }
}

#[test]
fn conv2d_with_many_channels() {
    // 3x3, stride 1, 16+ channels: the shape of most network layers, with odd sizes and the
    // paddings for which the input gradient runs as a forward convolution.
    for (i, (x, cout, pad)) in [
        ([1, 16, 5, 6], 16, 1),
        ([2, 17, 4, 7], 18, 0),
        ([1, 16, 3, 3], 16, 2),
    ]
    .into_iter()
    .enumerate()
    {
        let p = Conv2dParams::default().padding(pad);
        let case = format!("#{i} x {x:?} cout {cout} padding {pad}");
        let inputs = [
            f64s(&x, 10 + i as u64),
            f64s(&[cout, x[1], 3, 3], 20 + i as u64),
        ];
        check("ember.conv2d", &case, &inputs, |t| conv2d(&t[0], &t[1], p));
    }
}

#[test]
fn depthwise_conv2d_on_random_geometries() {
    let mut c = Cases::new(2);
    for i in 0..16 {
        let (xd, wd, p) = random_conv(&mut c, true, 5);
        let case = format!("#{i} x {xd:?} w {wd:?} {p:?}");
        let inputs = [f64s(&xd, c.seed()), f64s(&wd, c.seed())];
        check("ember.conv2d", &case, &inputs, |t| conv2d(&t[0], &t[1], p));
        check("composed depthwise", &case, &inputs, |t| {
            conv_ref::depthwise_conv2d(&t[0], &t[1], p)
        });
    }
}

#[test]
fn conv_transpose2d_on_random_geometries() {
    let mut c = Cases::new(3);
    for i in 0..20 {
        let depthwise = i % 4 == 3;
        let (xd, wd, p) = random_conv(&mut c, depthwise, 5);
        // The transposed conv of this geometry maps the conv's output back to its input.
        let y = conv2d(
            &Tensor::zeros(xd.to_vec(), DType::F64, &candle_core::Device::Cpu).unwrap(),
            &Tensor::zeros(wd.to_vec(), DType::F64, &candle_core::Device::Cpu).unwrap(),
            p,
        )
        .unwrap();
        let out_pad = [
            c.int(0, p.stride[0].max(p.dilation[0]) - 1),
            c.int(0, p.stride[1].max(p.dilation[1]) - 1),
        ];
        let case = format!(
            "#{i} x {:?} w {wd:?} {p:?} output padding {out_pad:?}",
            y.dims()
        );
        let inputs = [f64s(y.dims(), c.seed()), f64s(&wd, c.seed())];
        check("ember.conv_transpose2d", &case, &inputs, |t| {
            conv_transpose2d(&t[0], &t[1], p, out_pad)
        });
        check("composed conv_transpose2d", &case, &inputs, |t| {
            conv_ref::conv_transpose2d(&t[0], &t[1], p, out_pad)
        });
    }
}

#[test]
fn conv1d_and_conv_transpose1d() {
    let p = Conv1dParams {
        stride: 2,
        padding: 1,
        dilation: 2,
        groups: 2,
    };
    let inputs = [f64s(&[2, 4, 11], 1), f64s(&[6, 2, 3], 2)];
    check("ember.conv2d", "conv1d", &inputs, |t| {
        conv1d(&t[0], &t[1], p)
    });
    let inputs = [f64s(&[2, 4, 5], 3), f64s(&[4, 3, 3], 4)];
    check("ember.conv_transpose2d", "conv_transpose1d", &inputs, |t| {
        conv_transpose1d(&t[0], &t[1], p, 1)
    });
}

#[test]
fn layer_norm_last_dim_and_channels() {
    let mut c = Cases::new(4);
    for i in 0..8 {
        let (rows, d) = (c.int(1, 7), c.int(1, 9));
        let affine = i % 3 != 2;
        let case = format!("#{i} [{rows}, {d}] affine {affine}");
        let mut inputs = vec![f64s(&[rows, d], c.seed())];
        if affine {
            inputs.push(f64s(&[d], c.seed()));
            inputs.push(f64s(&[d], c.seed()));
        }
        let ln = |t: &[Tensor], composed: bool| {
            let (g, b) = (t.get(1), t.get(2));
            if composed {
                norm::composed::layer_norm(&t[0], g, b, 1e-5)
            } else {
                layer_norm(&t[0], g, b, 1e-5)
            }
        };
        check("ember.layer_norm", &case, &inputs, |t| ln(t, false));
        check("composed layer_norm", &case, &inputs, |t| ln(t, true));

        let shape = [c.int(1, 3), c.int(1, 5), c.int(1, 6), c.int(1, 5)];
        let case = format!("#{i} channels-first {shape:?} affine {affine}");
        let mut inputs = vec![f64s(&shape, c.seed())];
        if affine {
            inputs.push(f64s(&[shape[1]], c.seed()));
            inputs.push(f64s(&[shape[1]], c.seed()));
        }
        let lnc = |t: &[Tensor], composed: bool| {
            let (g, b) = (t.get(1), t.get(2));
            if composed {
                norm::composed::layer_norm_channels(&t[0], g, b, 1e-6)
            } else {
                layer_norm_channels(&t[0], g, b, 1e-6)
            }
        };
        check("ember.layer_norm", &case, &inputs, |t| lnc(t, false));
        check("composed layer_norm_channels", &case, &inputs, |t| {
            lnc(t, true)
        });
    }
}

#[test]
fn softmax_over_any_dim() {
    let mut c = Cases::new(5);
    for i in 0..8 {
        let shape = [c.int(1, 4), c.int(1, 5), c.int(1, 7)];
        let dim = c.int(0, 2);
        let case = format!("#{i} {shape:?} dim {dim}");
        let inputs = [f64s(&shape, c.seed())];
        check("ember.softmax", &case, &inputs, |t| softmax(&t[0], dim));
        check("composed softmax", &case, &inputs, |t| {
            softmax::composed::softmax(&t[0], dim)
        });
    }
}

#[test]
fn l2_normalize_over_any_dim() {
    let mut c = Cases::new(6);
    for i in 0..6 {
        let shape = [c.int(1, 4), c.int(1, 5), c.int(1, 7)];
        let dim = c.int(0, 2);
        let case = format!("#{i} {shape:?} dim {dim}");
        let inputs = [f64s(&shape, c.seed())];
        check("l2_normalize", &case, &inputs, |t| l2_normalize(&t[0], dim));
    }
}

#[test]
fn gelu_everywhere_on_the_curve() {
    // Values from -4 to 4: the tails and the bend near 0.
    let x = (f64s(&[3, 11], 40) * 2.0).unwrap();
    check("ember.gelu", "[3, 11]", std::slice::from_ref(&x), |t| {
        gelu(&t[0])
    });
    check("composed gelu", "[3, 11]", &[x], |t| {
        gelu::composed::gelu(&t[0])
    });
}

#[test]
fn broadcast_add_and_mul_for_every_pattern() {
    // b broadcast over: leading rows (bias), a middle dim (channel gate), the last dim
    // (spatial gate), nothing, a run through size-1 dims, and two runs (candle's path).
    for (i, (a, b)) in [
        (vec![5, 4], vec![4]),
        (vec![2, 3, 4], vec![2, 1, 4]),
        (vec![2, 3, 4], vec![2, 3, 1]),
        (vec![2, 3], vec![2, 3]),
        (vec![3, 1, 2, 4], vec![1, 1, 1, 4]),
        (vec![2, 3, 2, 2], vec![1, 3, 1, 1]),
    ]
    .into_iter()
    .enumerate()
    {
        let case = format!("#{i} a {a:?} b {b:?}");
        let inputs = [f64s(&a, 50 + i as u64), f64s(&b, 60 + i as u64)];
        check("ember.broadcast_add", &case, &inputs, |t| {
            broadcast_add(&t[0], &t[1])
        });
        check("ember.broadcast_mul", &case, &inputs, |t| {
            broadcast_mul(&t[0], &t[1])
        });
    }
}

#[test]
fn sum_keepdim_over_every_dim() {
    for dim in 0..3 {
        let case = format!("[3, 4, 5] dim {dim}");
        let inputs = [f64s(&[3, 4, 5], 70 + dim as u64)];
        check("ember.sum_keepdim", &case, &inputs, |t| {
            sum_keepdim(&t[0], dim)
        });
        check("composed sum_keepdim", &case, &inputs, |t| {
            broadcast::composed::sum_keepdim(&t[0], dim)
        });
    }
}

fn random_max_pool(c: &mut Cases) -> MaxPool2dParams {
    let k = (c.int(1, 4), c.int(1, 4));
    let d = (c.int(1, 2), c.int(1, 2));
    let pad = |k: usize, d: usize, c: &mut Cases| c.int(0, (d * (k - 1)).div_ceil(2));
    MaxPool2dParams::new(k)
        .stride((c.int(1, 3), c.int(1, 3)))
        .dilation(d)
        .padding((pad(k.0, d.0, c), pad(k.1, d.1, c)))
        .ceil_mode(c.coin())
}

#[test]
fn max_pool2d_on_random_geometries() {
    let mut c = Cases::new(6);
    for i in 0..20 {
        let p = random_max_pool(&mut c);
        let reach = |a: usize| p.dilation[a] * (p.kernel[a] - 1) + 1;
        let shape = [
            c.int(1, 2),
            c.int(1, 3),
            reach(0) + c.int(0, 5),
            reach(1) + c.int(0, 5),
        ];
        let case = format!("#{i} {shape:?} {p:?}");
        let inputs = [distinct(&shape, c.seed(), DType::F64)];
        check("ember.max_pool2d", &case, &inputs, |t| max_pool2d(&t[0], p));
        check("composed max_pool2d", &case, &inputs, |t| {
            pool::composed::max_pool2d(&t[0], p)
        });
    }
}

#[test]
fn avg_pool2d_on_random_geometries() {
    let mut c = Cases::new(7);
    for i in 0..20 {
        let p = random_avg_pool(&mut c, i % 5 == 4);
        let k = (p.kernel[0], p.kernel[1]);
        let shape = [
            c.int(1, 2),
            c.int(1, 3),
            k.0 + c.int(0, 5),
            k.1 + c.int(0, 5),
        ];
        let case = format!("#{i} {shape:?} {p:?}");
        let inputs = [f64s(&shape, c.seed())];
        check("ember.resample2d", &case, &inputs, |t| avg_pool2d(&t[0], p));
        check("composed avg_pool2d", &case, &inputs, |t| {
            pool::composed::avg_pool2d(&t[0], p)
        });
    }
}

#[test]
fn adaptive_avg_pool2d_on_random_sizes() {
    let mut c = Cases::new(8);
    for i in 0..12 {
        let shape = [c.int(1, 2), c.int(1, 3), c.int(1, 9), c.int(1, 9)];
        let out = (c.int(1, 6), c.int(1, 6));
        let case = format!("#{i} {shape:?} -> {out:?}");
        let inputs = [f64s(&shape, c.seed())];
        check("ember.resample2d", &case, &inputs, |t| {
            adaptive_avg_pool2d(&t[0], out)
        });
        check("composed adaptive_avg_pool2d", &case, &inputs, |t| {
            pool::composed::adaptive_avg_pool2d(&t[0], out)
        });
    }
}

fn random_resize(c: &mut Cases) -> Resize {
    if c.coin() {
        Resize::Size(c.int(1, 11), c.int(1, 11))
    } else {
        let scales = [0.5, 0.75, 1.5, 2.0, 2.5, 3.0];
        Resize::Scale(scales[c.int(0, 5)], scales[c.int(0, 5)])
    }
}

#[test]
fn upsampling_on_random_sizes() {
    let mut c = Cases::new(9);
    for i in 0..16 {
        let shape = [c.int(1, 2), c.int(1, 2), c.int(2, 6), c.int(2, 6)];
        let size = random_resize(&mut c);
        let align = c.coin();
        let case = format!("#{i} {shape:?} {size:?} align_corners {align}");
        let inputs = [f64s(&shape, c.seed())];
        check("ember.resample2d", &case, &inputs, |t| {
            upsample_bilinear2d(&t[0], size, align)
        });
        check("composed bilinear", &case, &inputs, |t| {
            upsample::composed::upsample_bilinear2d(&t[0], size, align)
        });
        check("ember.resample2d", &case, &inputs, |t| {
            upsample_nearest2d(&t[0], size)
        });
        check("composed nearest", &case, &inputs, |t| {
            upsample::composed::upsample_nearest2d(&t[0], size)
        });
    }
}

#[test]
fn ops_compose_in_one_graph() {
    // A small block exercising several ops at once, as a model would chain them.
    let inputs = [
        f64s(&[2, 3, 9, 8], 1),
        f64s(&[4, 3, 3, 3], 2),
        f64s(&[4], 3),
    ];
    check(
        "ember.conv2d",
        "conv -> norm -> pool -> softmax",
        &inputs,
        |t| {
            let y = conv2d(
                &t[0],
                &t[1],
                Conv2dParams::default().padding(1).stride((2, 1)),
            )?;
            let y = layer_norm_channels(&y, Some(&t[2]), None, 1e-5)?;
            let y = max_pool2d(&(y * 3.0)?, MaxPool2dParams::new(2).stride(1))?;
            softmax(&y.flatten_from(1)?, 1)
        },
    );
}

#[test]
fn batch_norm_in_both_modes() {
    use ember_ops::batch_norm::composed as bn_ref;
    for (i, shape) in [[3, 4, 5, 6], [2, 3, 1, 7], [5, 2, 1, 1]]
        .iter()
        .enumerate()
    {
        let case = format!("x {shape:?}");
        let c = shape[1];
        let s = 100 + 10 * i as u64;
        let inputs = [f64s(shape, s), f64s(&[c], s + 1), f64s(&[c], s + 2)];
        let train = |t: &[Tensor]| Ok(batch_norm_train(&t[0], Some(&t[1]), Some(&t[2]), 1e-5)?.0);
        let train_case = format!("train {case}");
        check("ember.batch_stats", &train_case, &inputs, train);
        let (rm, rv) = (f64s(&[c], s + 3), f64s(&[c], s + 4).abs().unwrap());
        let eval = |t: &[Tensor]| {
            let (w, b) = (Some(&t[1]), Some(&t[2]));
            batch_norm(&t[0], &rm, &rv, w, b, 1e-5, BatchNormMode::Eval)
        };
        check("ember.batch_norm", &format!("eval {case}"), &inputs, eval);
        let composed = |t: &[Tensor]| {
            let (w, b) = (Some(&t[1]), Some(&t[2]));
            bn_ref::normalise(&t[0], &rm, &rv, w, b, 1e-5, BatchNormMode::Train)
        };
        check("composed batch_norm", &train_case, &inputs, composed);
        // Synchronised over one rank (the sum over ranks is the identity) it is batch norm.
        let alone: RankSum = Arc::new(|t: &Tensor| Ok(t.clone()));
        let synced = |t: &[Tensor]| {
            let (w, b) = (Some(&t[1]), Some(&t[2]));
            Ok(batch_norm_train_synced(&t[0], w, b, 1e-5, &alone)?.0)
        };
        check("ember.summed_gradient", &train_case, &inputs, synced);
    }
}
