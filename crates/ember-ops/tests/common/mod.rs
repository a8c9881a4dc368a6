//! Helpers shared by the ember-ops test suites.
#![allow(dead_code)]

use candle_core::{DType, Device, Result, Tensor, Var};
use ember_core::EmberRng;
use ember_ops::{AvgPool2dParams, Conv2dParams};

/// Standard-normal test data in `dtype`, reproducible from `seed`.
pub fn randn(shape: &[usize], seed: u64, dtype: DType) -> Tensor {
    EmberRng::new(seed)
        .normal_tensor(shape.to_vec(), 0.0, 1.0, dtype, &Device::Cpu)
        .unwrap()
}

/// Distinct values (a shuffled ramp), for ops like max-pool whose gradient is only defined
/// away from ties.
pub fn distinct(shape: &[usize], seed: u64, dtype: DType) -> Tensor {
    let n: usize = shape.iter().product();
    let order = EmberRng::new(seed).permutation(n);
    let values: Vec<f64> = order
        .iter()
        .map(|&i| i as f64 * 0.01 - n as f64 * 0.005)
        .collect();
    Tensor::from_vec(values, shape.to_vec(), &Device::Cpu)
        .unwrap()
        .to_dtype(dtype)
        .unwrap()
}

pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.dims(), b.dims(), "shapes differ");
    (a.to_dtype(DType::F64).unwrap() - b.to_dtype(DType::F64).unwrap())
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f64>()
        .unwrap()
}

pub fn assert_close(a: &Tensor, b: &Tensor, tol: f64, what: &str) {
    let d = max_abs_diff(a, b);
    assert!(d <= tol, "{what}: max abs diff {d:e} > {tol:e}");
}

/// The output of `f` and the gradients of `sum(f(inputs) * r)` with respect to each input,
/// for a fixed random `r`: enough to compare two implementations of an op end to end.
pub fn value_and_grads(
    inputs: &[Tensor],
    f: impl Fn(&[Tensor]) -> Result<Tensor>,
) -> (Tensor, Vec<Tensor>) {
    let vars: Vec<Var> = inputs
        .iter()
        .map(|t| Var::from_tensor(t).unwrap())
        .collect();
    let ts: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
    let y = f(&ts).unwrap();
    let r = randn(y.dims(), 99, y.dtype());
    let grads = (&y * &r).unwrap().sum_all().unwrap().backward().unwrap();
    let gs = vars
        .iter()
        .map(|v| grads.get(v).expect("gradient reaches every input").clone())
        .collect();
    (y, gs)
}

/// Compares two implementations' outputs and gradients.
pub fn assert_same_op(
    inputs: &[Tensor],
    tol: f64,
    what: &str,
    a: impl Fn(&[Tensor]) -> Result<Tensor>,
    b: impl Fn(&[Tensor]) -> Result<Tensor>,
) {
    let (ya, ga) = value_and_grads(inputs, a);
    let (yb, gb) = value_and_grads(inputs, b);
    assert_close(&ya, &yb, tol, &format!("{what}: forward"));
    for (i, (x, y)) in ga.iter().zip(&gb).enumerate() {
        assert_close(x, y, tol, &format!("{what}: gradient of input {i}"));
    }
}

/// A seeded source of random test configurations.
pub struct Cases(pub EmberRng);

impl Cases {
    pub fn new(seed: u64) -> Self {
        Self(EmberRng::new(seed))
    }

    /// Uniform in `lo..=hi`.
    pub fn int(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.0.below(hi - lo + 1)
    }

    pub fn coin(&mut self) -> bool {
        self.0.bernoulli(0.5)
    }

    pub fn seed(&mut self) -> u64 {
        self.0.next_u64()
    }
}

/// A random valid convolution (input dims, weight dims, params): odd and non-square sizes up
/// to `extra` pixels beyond the kernel's reach, strides, dilation, padding and groups.
pub fn random_conv(
    c: &mut Cases,
    depthwise: bool,
    extra: usize,
) -> ([usize; 4], [usize; 4], Conv2dParams) {
    let groups = if depthwise { c.int(2, 4) } else { c.int(1, 3) };
    let (cin_g, cout_g) = if depthwise {
        (1, 1)
    } else {
        (c.int(1, 3), c.int(1, 3))
    };
    let (kh, kw) = (c.int(1, 4), c.int(1, 4));
    let p = Conv2dParams::default()
        .stride((c.int(1, 3), c.int(1, 3)))
        .dilation((c.int(1, 2), c.int(1, 2)))
        .padding((c.int(0, 2), c.int(0, 2)))
        .groups(groups);
    let reach = |k: usize, d: usize, pad: usize| (d * (k - 1) + 1).saturating_sub(2 * pad).max(1);
    let h = reach(kh, p.dilation[0], p.padding[0]) + c.int(0, extra);
    let w = reach(kw, p.dilation[1], p.padding[1]) + c.int(0, extra);
    (
        [c.int(1, 2), groups * cin_g, h, w],
        [groups * cout_g, cin_g, kh, kw],
        p,
    )
}

/// Random average-pooling settings: kernel up to 4, stride up to 3, padding up to half the
/// kernel, either ceil mode and `count_include_pad`, and a divisor override if asked.
pub fn random_avg_pool(c: &mut Cases, divisor_override: bool) -> AvgPool2dParams {
    let k = (c.int(1, 4), c.int(1, 4));
    AvgPool2dParams::new(k)
        .stride((c.int(1, 3), c.int(1, 3)))
        .padding((c.int(0, k.0 / 2), c.int(0, k.1 / 2)))
        .ceil_mode(c.coin())
        .count_include_pad(c.coin())
        .divisor_override(divisor_override.then(|| c.int(1, 9)))
}
