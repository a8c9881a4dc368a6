//! Ember's patched candle-core (third_party/README.md) stores the first gradient that
//! reaches a tensor instead of adding it to zeros: the gradients must be those of candle's
//! own sums, bit for bit, on the graphs the models build (fan-in from residuals and shared
//! projections, broadcasts, reshapes and permutes, custom ops) and on the rules that
//! subtract.

use candle_core::backprop::{set_zero_filled_gradient_sums, GradStore};
use candle_core::{DType, Device, Tensor, Var};
use ember_core::{EmberRng, SeededVarMap};
use ember_losses::cross_entropy;
use serde_json::json;

/// The gradients of `loss()` over `vars`, with candle's sums or the patched ones.
fn gradients(loss: &dyn Fn() -> Tensor, vars: &[Var], zero_filled: bool) -> Vec<Option<Vec<f32>>> {
    set_zero_filled_gradient_sums(zero_filled);
    let grads: GradStore = loss().backward().unwrap();
    set_zero_filled_gradient_sums(false);
    vars.iter()
        .map(|v| {
            grads
                .get(v)
                .map(|g| g.flatten_all().unwrap().to_vec1().unwrap())
        })
        .collect()
}

fn assert_same_gradients(what: &str, loss: &dyn Fn() -> Tensor, vars: &[Var]) {
    let ours = gradients(loss, vars, false);
    let candles = gradients(loss, vars, true);
    assert!(
        ours.iter().filter(|g| g.is_some()).count() == vars.len(),
        "{what}: every variable has a gradient"
    );
    // `==` on f32: 0 + g and g differ at most in the sign of a zero.
    assert!(ours == candles, "{what}: the gradients differ");
}

/// `arch` with `overrides`, in training mode on 1-channel `side`-pixel images.
fn model_loss(arch: &str, overrides: serde_json::Value, side: usize) {
    let dev = Device::Cpu;
    let vars = SeededVarMap::new(0);
    let cfg = ember_models::resolve(arch, &overrides).unwrap();
    let model =
        ember_models::build(&cfg.family, &cfg.config, vars.var_builder(DType::F32, &dev)).unwrap();
    let x = EmberRng::new(1)
        .normal_tensor((4, 1, side, side), 0.0, 1.0, DType::F32, &dev)
        .unwrap();
    let y = Tensor::new(&[0u32, 3, 7, 9], &dev).unwrap();
    let loss = || {
        model.reseed(0);
        cross_entropy(&model.forward_t(&x, true).unwrap(), &y, 0.1).unwrap()
    };
    // Parameters only: buffers (batch-norm statistics) get no gradient.
    let grads = loss().backward().unwrap();
    let params: Vec<Var> = vars
        .vars()
        .all_vars()
        .into_iter()
        .filter(|v| grads.get(v).is_some())
        .collect();
    assert!(!params.is_empty());
    assert_same_gradients(arch, &loss, &params);
}

/// One test: the switch is process-wide, so the checks must not run side by side.
#[test]
fn patched_gradient_sums_equal_candles() {
    // The subtracting rules and a tensor used twice by one op: x - y, -x, x * x, 1 / x.
    let dev = Device::Cpu;
    let a = Var::new(&[1.5f32, -2.0, 0.25], &dev).unwrap();
    let b = Var::new(&[0.5f32, 3.0, -1.0], &dev).unwrap();
    let small = || {
        let (a, b) = (a.as_tensor(), b.as_tensor());
        let diff = (a - b).unwrap();
        let terms = [
            (&diff * &diff).unwrap(),
            b.neg().unwrap(),
            (a + a).unwrap().recip().unwrap(),
            b.broadcast_div(&a.sum_keepdim(0).unwrap()).unwrap(),
        ];
        Tensor::stack(&terms, 0).unwrap().sum_all().unwrap()
    };
    assert_same_gradients("small graph", &small, &[a.clone(), b.clone()]);
    // d/da = 2 (a - b) - 1 / (2 a^2) - sum(b) / sum(a)^2, with sum(a) = -0.25, sum(b) = 2.5.
    let ours = gradients(&small, std::slice::from_ref(&a), false);
    let want = [1.5f32, -2.0, 0.25]
        .iter()
        .zip([0.5f32, 3.0, -1.0])
        .map(|(a, b)| 2.0 * (a - b) - 1.0 / (2.0 * a * a) - 2.5 / 0.0625)
        .collect::<Vec<_>>();
    let got = ours[0].as_ref().unwrap();
    for (g, w) in got.iter().zip(&want) {
        assert!((g - w).abs() < 1e-4, "{got:?} vs {want:?}");
    }

    model_loss(
        "lightvit_nano_32",
        json!({"embed_dims": [8, 16, 32], "num_heads": [1, 1, 1], "num_layers": [1, 1, 1],
               "neck_dim": 32}),
        32,
    );
    model_loss(
        "resnet",
        json!({"stem_type": "small", "layers": [1, 1], "channels": [4, 8], "stem_width": 4,
               "in_chans": 1, "num_classes": 10}),
        16,
    );
}
