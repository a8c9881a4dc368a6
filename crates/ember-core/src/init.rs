//! Weight initialisers, as `torch.nn.init` and timm define them, drawn from [`EmberRng`] so
//! that they are reproducible from a seed (candle's own `Init` cannot be seeded on CPU and has
//! no truncated normal or Xavier).

use candle_core::{DType, Device, Shape, Tensor};

use crate::{EmberError, EmberRng, Result};

/// Which fan the Kaiming scale preserves (`mode` in `torch.nn.init.kaiming_*_`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FanMode {
    FanIn,
    FanOut,
}

/// The non-linearity after the layer, for the Kaiming gain (`torch.nn.init.calculate_gain`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Nonlinearity {
    Linear,
    Sigmoid,
    Tanh,
    Relu,
    /// Leaky ReLU with this negative slope: gain sqrt(2 / (1 + a^2)). PyTorch's default
    /// `nn.Linear`/`nn.Conv2d` init is Kaiming-uniform with `LeakyRelu(sqrt(5))`.
    LeakyRelu(f64),
    Selu,
    Gain(f64),
}

impl Nonlinearity {
    pub fn gain(self) -> f64 {
        match self {
            Self::Linear | Self::Sigmoid => 1.0,
            Self::Tanh => 5.0 / 3.0,
            Self::Relu => 2f64.sqrt(),
            Self::LeakyRelu(a) => (2.0 / (1.0 + a * a)).sqrt(),
            Self::Selu => 0.75,
            Self::Gain(g) => g,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Init {
    Const(f64),
    Uniform {
        lo: f64,
        hi: f64,
    },
    Normal {
        mean: f64,
        std: f64,
    },
    /// Normal(mean, std) restricted to `[lo, hi]` (absolute bounds, as timm's `trunc_normal_`).
    TruncNormal {
        mean: f64,
        std: f64,
        lo: f64,
        hi: f64,
    },
    KaimingUniform {
        fan: FanMode,
        nonlinearity: Nonlinearity,
    },
    KaimingNormal {
        fan: FanMode,
        nonlinearity: Nonlinearity,
    },
    XavierUniform {
        gain: f64,
    },
    XavierNormal {
        gain: f64,
    },
}

impl Init {
    pub const ZEROS: Init = Init::Const(0.0);
    pub const ONES: Init = Init::Const(1.0);

    /// timm's ViT default: `trunc_normal_(w, std=std)`, i.e. mean 0 cut at -2 and 2.
    pub fn trunc_normal(std: f64) -> Self {
        Self::TruncNormal {
            mean: 0.0,
            std,
            lo: -2.0,
            hi: 2.0,
        }
    }

    /// torchvision's ResNet conv init: `kaiming_normal_(mode="fan_out", nonlinearity="relu")`.
    pub const KAIMING_NORMAL_FAN_OUT: Init = Init::KaimingNormal {
        fan: FanMode::FanOut,
        nonlinearity: Nonlinearity::Relu,
    };

    /// The values for a tensor of `shape`, in row-major order.
    pub fn sample(&self, shape: &Shape, rng: &mut EmberRng) -> Result<Vec<f64>> {
        let n = shape.elem_count();
        let (fan_in, fan_out) = fans(shape);
        let fan = |mode: FanMode| match mode {
            FanMode::FanIn => fan_in,
            FanMode::FanOut => fan_out,
        } as f64;
        let uniform = |rng: &mut EmberRng, bound: f64| -> Vec<f64> {
            (0..n).map(|_| rng.uniform(-bound, bound)).collect()
        };
        let normal = |rng: &mut EmberRng, mean: f64, std: f64| -> Vec<f64> {
            (0..n).map(|_| rng.normal(mean, std)).collect()
        };
        Ok(match *self {
            Self::Const(v) => vec![v; n],
            Self::Uniform { lo, hi } => (0..n).map(|_| rng.uniform(lo, hi)).collect(),
            Self::Normal { mean, std } => normal(rng, mean, std),
            Self::TruncNormal { mean, std, lo, hi } => {
                // `partial_cmp` so that NaN bounds are rejected too.
                if lo.partial_cmp(&hi) != Some(std::cmp::Ordering::Less)
                    || std.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater)
                {
                    return Err(EmberError::bad_input(format!(
                        "truncated normal needs lo < hi and std > 0 (got [{lo}, {hi}], std {std})"
                    )));
                }
                (0..n)
                    .map(|_| truncated_normal(rng, mean, std, lo, hi))
                    .collect::<Result<_>>()?
            }
            Self::KaimingUniform {
                fan: mode,
                nonlinearity,
            } => {
                let std = nonlinearity.gain() / fan(mode).sqrt();
                uniform(rng, 3f64.sqrt() * std)
            }
            Self::KaimingNormal {
                fan: mode,
                nonlinearity,
            } => normal(rng, 0.0, nonlinearity.gain() / fan(mode).sqrt()),
            Self::XavierUniform { gain } => {
                let std = gain * (2.0 / (fan_in + fan_out) as f64).sqrt();
                uniform(rng, 3f64.sqrt() * std)
            }
            Self::XavierNormal { gain } => {
                normal(rng, 0.0, gain * (2.0 / (fan_in + fan_out) as f64).sqrt())
            }
        })
    }

    pub fn tensor(
        &self,
        shape: impl Into<Shape>,
        dtype: DType,
        device: &Device,
        rng: &mut EmberRng,
    ) -> Result<Tensor> {
        let shape = shape.into();
        let data = self.sample(&shape, rng)?;
        Ok(Tensor::from_vec(data, shape, device)?.to_dtype(dtype)?)
    }
}

impl From<candle_nn::Init> for Init {
    fn from(init: candle_nn::Init) -> Self {
        use candle_nn::init::{FanInOut, NonLinearity, NormalOrUniform};
        match init {
            candle_nn::Init::Const(v) => Self::Const(v),
            candle_nn::Init::Randn { mean, stdev } => Self::Normal { mean, std: stdev },
            candle_nn::Init::Uniform { lo, up } => Self::Uniform { lo, hi: up },
            candle_nn::Init::Kaiming {
                dist,
                fan,
                non_linearity,
            } => {
                let fan = match fan {
                    FanInOut::FanIn => FanMode::FanIn,
                    FanInOut::FanOut => FanMode::FanOut,
                };
                let nonlinearity = match non_linearity {
                    NonLinearity::ReLU => Nonlinearity::Relu,
                    NonLinearity::Linear => Nonlinearity::Linear,
                    NonLinearity::Sigmoid => Nonlinearity::Sigmoid,
                    NonLinearity::Tanh => Nonlinearity::Tanh,
                    NonLinearity::SELU => Nonlinearity::Selu,
                    NonLinearity::ExplicitGain(g) => Nonlinearity::Gain(g),
                };
                match dist {
                    NormalOrUniform::Uniform => Self::KaimingUniform { fan, nonlinearity },
                    NormalOrUniform::Normal => Self::KaimingNormal { fan, nonlinearity },
                }
            }
        }
    }
}

/// `(fan_in, fan_out)` as `torch.nn.init._calculate_fan_in_and_fan_out`: dims 1 and 0 times
/// the receptive field (the product of the dims after the first two). Tensors with fewer
/// than two dims count as a single fan of their length.
pub fn fans(shape: &Shape) -> (usize, usize) {
    let dims = shape.dims();
    match dims {
        [] => (1, 1),
        [n] => (*n, *n),
        [out, inp, rest @ ..] => {
            let field: usize = rest.iter().product();
            (inp * field, out * field)
        }
    }
}

/// Rejection sampling: exact, and fast for the usual +-2 std windows (95% acceptance).
fn truncated_normal(rng: &mut EmberRng, mean: f64, std: f64, lo: f64, hi: f64) -> Result<f64> {
    const MAX_TRIES: usize = 100_000;
    for _ in 0..MAX_TRIES {
        let x = rng.normal(mean, std);
        if (lo..=hi).contains(&x) {
            return Ok(x);
        }
    }
    Err(EmberError::bad_input(format!(
        "truncated normal: [{lo}, {hi}] is too far in the tail of N({mean}, {std}^2)"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn moments(xs: &[f64]) -> (f64, f64) {
        let n = xs.len() as f64;
        let mean = xs.iter().sum::<f64>() / n;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
        (mean, var.sqrt())
    }

    #[test]
    fn fans_follow_pytorch() {
        assert_eq!(fans(&Shape::from((64, 32, 3, 3))), (288, 576));
        assert_eq!(fans(&Shape::from((10, 20))), (20, 10));
        assert_eq!(fans(&Shape::from(7)), (7, 7));
    }

    #[test]
    fn same_seed_same_weights() {
        let init = Init::trunc_normal(0.02);
        let shape = Shape::from((16, 8));
        let a = init.sample(&shape, &mut EmberRng::new(1)).unwrap();
        let b = init.sample(&shape, &mut EmberRng::new(1)).unwrap();
        let c = init.sample(&shape, &mut EmberRng::new(2)).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn kaiming_normal_fan_out_has_torchvision_std() {
        let shape = Shape::from((256, 64, 3, 3));
        let xs = Init::KAIMING_NORMAL_FAN_OUT
            .sample(&shape, &mut EmberRng::new(0))
            .unwrap();
        let (mean, std) = moments(&xs);
        let want = (2.0f64 / (256.0 * 9.0)).sqrt();
        assert!(mean.abs() < 0.01 * want * 10.0, "{mean}");
        assert!((std / want - 1.0).abs() < 0.02, "{std} vs {want}");
    }

    #[test]
    fn kaiming_uniform_default_linear_bound() {
        // nn.Linear(100, 10): bound = 1 / sqrt(fan_in).
        let init = Init::KaimingUniform {
            fan: FanMode::FanIn,
            nonlinearity: Nonlinearity::LeakyRelu(5f64.sqrt()),
        };
        let xs = init
            .sample(&Shape::from((10, 100)), &mut EmberRng::new(0))
            .unwrap();
        let bound = 0.1;
        assert!(xs.iter().all(|x| x.abs() <= bound));
        assert!(xs.iter().any(|x| x.abs() > 0.95 * bound));
    }

    #[test]
    fn xavier_uniform_bound() {
        let init = Init::XavierUniform { gain: 1.0 };
        let xs = init
            .sample(&Shape::from((30, 70)), &mut EmberRng::new(0))
            .unwrap();
        let bound = (6.0f64 / 100.0).sqrt();
        assert!(xs.iter().all(|x| x.abs() <= bound));
        assert!(xs.iter().any(|x| x.abs() > 0.98 * bound));
        let (_, std) = moments(
            &Init::XavierNormal { gain: 2.0 }
                .sample(&Shape::from((300, 700)), &mut EmberRng::new(0))
                .unwrap(),
        );
        assert!((std / (2.0 * (2.0f64 / 1000.0).sqrt()) - 1.0).abs() < 0.02);
    }

    #[test]
    fn trunc_normal_stays_inside_its_bounds() {
        let init = Init::TruncNormal {
            mean: 0.0,
            std: 1.0,
            lo: -0.5,
            hi: 1.5,
        };
        let xs = init
            .sample(&Shape::from(10_000), &mut EmberRng::new(4))
            .unwrap();
        assert!(xs.iter().all(|x| (-0.5..=1.5).contains(x)));
        assert!(xs.iter().any(|x| *x < -0.45) && xs.iter().any(|x| *x > 1.45));
        let bad = Init::TruncNormal {
            mean: 0.0,
            std: 1.0,
            lo: 1.0,
            hi: 1.0,
        };
        assert_eq!(
            bad.sample(&Shape::from(1), &mut EmberRng::new(0))
                .unwrap_err()
                .exit_code(),
            2
        );
    }

    #[test]
    fn constants_and_candle_hints() {
        let shape = Shape::from((2, 3));
        let rng = &mut EmberRng::new(0);
        assert_eq!(Init::ZEROS.sample(&shape, rng).unwrap(), vec![0.0; 6]);
        assert_eq!(Init::ONES.sample(&shape, rng).unwrap(), vec![1.0; 6]);
        assert_eq!(Init::from(candle_nn::Init::Const(3.0)), Init::Const(3.0));
        assert_eq!(
            Init::from(candle_nn::init::DEFAULT_KAIMING_NORMAL),
            Init::KaimingNormal {
                fan: FanMode::FanIn,
                nonlinearity: Nonlinearity::Relu
            }
        );
        let t = Init::ONES
            .tensor((2, 2), DType::F32, &Device::Cpu, rng)
            .unwrap();
        assert_eq!(t.dtype(), DType::F32);
        assert_eq!(t.sum_all().unwrap().to_scalar::<f32>().unwrap(), 4.0);
    }
}
