//! The cases where candle 0.11.1's own ops give a missing or wrong gradient (specs/candle.md
//! section 1.1, plus conv1d found by this suite), each showing candle's failure and Ember's
//! op passing the finite-difference check on the same input. If a candle upgrade fixes one,
//! its test fails here and says which workaround can go.

mod common;

use candle_core::{DType, Result, Tensor, Var};
use common::*;
use ember_ops::gradcheck::GradCheck;
use ember_ops::*;

fn passes(inputs: &[Tensor], f: impl Fn(&[Tensor]) -> Result<Tensor>) {
    passes_with(GradCheck::default(), inputs, f)
}

fn passes_with(check: GradCheck, inputs: &[Tensor], f: impl Fn(&[Tensor]) -> Result<Tensor>) {
    let report = check.run(inputs, f).unwrap();
    assert!(report.coords > 0);
}

fn candle_fails(inputs: &[Tensor], f: impl Fn(&[Tensor]) -> Result<Tensor>) -> String {
    GradCheck::default()
        .run(inputs, f)
        .expect_err("candle's op now passes: drop the workaround")
        .to_string()
}

#[test]
fn layer_norm_gradient_is_not_cut() {
    // candle's fused kernels are f32-only, so look for the gradient directly.
    let x = Var::from_tensor(&randn(&[3, 8], 1, DType::F32)).unwrap();
    let (g, b) = (randn(&[8], 2, DType::F32), randn(&[8], 3, DType::F32));
    let y = candle_nn::ops::layer_norm(x.as_tensor(), &g, &b, 1e-5).unwrap();
    assert!(
        y.sum_all().unwrap().backward().unwrap().get(&x).is_none(),
        "ops::layer_norm"
    );
    let ln = candle_nn::LayerNorm::new(g, b, 1e-5);
    let y = candle_core::Module::forward(&ln, x.as_tensor()).unwrap();
    assert!(
        y.sum_all().unwrap().backward().unwrap().get(&x).is_none(),
        "LayerNorm::forward"
    );
    let inputs = [
        randn(&[3, 8], 1, DType::F64),
        randn(&[8], 2, DType::F64),
        randn(&[8], 3, DType::F64),
    ];
    passes(&inputs, |t| {
        layer_norm(&t[0], Some(&t[1]), Some(&t[2]), 1e-5)
    });
}

#[test]
fn softmax_gradient_is_not_cut() {
    let inputs = [randn(&[3, 8], 1, DType::F64)];
    let e = candle_fails(&inputs, |t| candle_nn::ops::softmax_last_dim(&t[0]));
    assert!(e.contains("no gradient reached"), "{e}");
    passes(&inputs, |t| softmax(&t[0], 1));
}

#[test]
fn max_pool_gradient_is_not_scaled_by_the_window_area() {
    let x = Var::from_tensor(
        &Tensor::new(&[[[[1.0f64, 2.0], [3.0, 4.0]]]], &candle_core::Device::Cpu).unwrap(),
    )
    .unwrap();
    let grad_at_max = |y: Tensor| -> f64 {
        let g = y.sum_all().unwrap().backward().unwrap();
        g.get(&x)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap()[3]
    };
    assert_eq!(
        grad_at_max(x.max_pool2d(2).unwrap()),
        0.25,
        "candle scales by 1/k^2"
    );
    assert_eq!(
        grad_at_max(max_pool2d(x.as_tensor(), MaxPool2dParams::new(2)).unwrap()),
        1.0
    );
}

#[test]
fn resnet_stem_max_pool_has_a_gradient() {
    // 3x3, stride 2, padding 1: candle has no padding and no backward for kernel != stride.
    let inputs = [distinct(&[2, 3, 9, 8], 1, DType::F64)];
    let e = candle_fails(&inputs, |t| t[0].max_pool2d_with_stride(3, 2));
    assert!(!e.contains("analytic"), "an error, not a wrong value: {e}");
    passes(&inputs, |t| {
        max_pool2d(&t[0], MaxPool2dParams::new(3).stride(2).padding(1))
    });
}

#[test]
fn avg_pool_with_kernel_other_than_stride_has_a_gradient() {
    let inputs = [randn(&[2, 3, 7, 6], 1, DType::F64)];
    candle_fails(&inputs, |t| t[0].avg_pool2d_with_stride(3, 1));
    passes(&inputs, |t| {
        avg_pool2d(&t[0], AvgPool2dParams::new(3).stride(1))
    });
}

#[test]
fn conv2d_stride_2_on_inputs_of_mixed_parity() {
    for (h, w) in [(8, 7), (7, 8), (16, 9), (257, 100)] {
        let inputs = [
            randn(&[1, 2, h, w], 1, DType::F64),
            randn(&[3, 2, 3, 3], 2, DType::F64),
        ];
        let e = candle_fails(&inputs, |t| t[0].conv2d(&t[1], 1, 2, 1, 1));
        assert!(
            e.contains("shape mismatch") || e.contains("mismatch"),
            "{h}x{w}: {e}"
        );
        // Large outputs make a large loss: allow its rounding in the finite differences.
        let check = GradCheck {
            atol: 1e-6,
            ..Default::default()
        };
        passes_with(check, &inputs, |t| {
            conv2d(&t[0], &t[1], Conv2dParams::default().stride(2).padding(1))
        });
    }
}

#[test]
fn conv1d_gradient_with_a_batch_of_more_than_one() {
    // Found by this suite: candle's conv1d gradients are right for batch 1, wrong above.
    let inputs = [
        randn(&[2, 4, 13], 1, DType::F64),
        randn(&[6, 4, 3], 2, DType::F64),
    ];
    let e = candle_fails(&inputs, |t| t[0].conv1d(&t[1], 0, 1, 1, 1));
    assert!(e.contains("analytic"), "a wrong value: {e}");
    passes(&inputs, |t| conv1d(&t[0], &t[1], Conv1dParams::default()));
}

#[test]
fn conv_transpose1d_has_a_gradient() {
    let inputs = [
        randn(&[2, 3, 6], 1, DType::F64),
        randn(&[3, 2, 3], 2, DType::F64),
    ];
    let e = candle_fails(&inputs, |t| t[0].conv_transpose1d(&t[1], 0, 0, 2, 1, 1));
    assert!(e.contains("backward is not supported"), "{e}");
    passes(&inputs, |t| {
        conv_transpose1d(
            &t[0],
            &t[1],
            Conv1dParams {
                stride: 2,
                ..Default::default()
            },
            0,
        )
    });
}

#[test]
fn upsampling_has_a_gradient() {
    let inputs = [randn(&[1, 2, 4, 5], 1, DType::F64)];
    candle_fails(&inputs, |t| t[0].upsample_bilinear2d(7, 9, false));
    passes(&inputs, |t| {
        upsample_bilinear2d(&t[0], Resize::Size(7, 9), false)
    });
    candle_fails(&inputs, |t| t[0].upsample_nearest2d(7, 9));
    passes(&inputs, |t| upsample_nearest2d(&t[0], Resize::Size(7, 9)));
}
