use candle_core::{Module, Result, Tensor};
use candle_nn::{Init, VarBuilder};

/// `torch.nn.Linear`: `x W^T + b` over the last dim of `x`, as one GEMM over all leading
/// dims, with the bias added through `ember_ops::broadcast_add` (candle's broadcast add
/// sums the bias gradient over rows with a strided reduction, 30x slower).
#[derive(Debug, Clone)]
pub struct Linear {
    weight: Tensor,
    bias: Option<Tensor>,
}

impl Linear {
    pub fn new(weight: Tensor, bias: Option<Tensor>) -> Self {
        Self { weight, bias }
    }

    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }

    /// The layer restricted to output features `start..start + len` (views of the weight
    /// and bias, so gradients reach the full parameters).
    pub fn outputs(&self, start: usize, len: usize) -> Result<Linear> {
        Ok(Linear {
            weight: self.weight.narrow(0, start, len)?,
            bias: match &self.bias {
                Some(b) => Some(b.narrow(0, start, len)?),
                None => None,
            },
        })
    }
}

impl Module for Linear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let dims = x.dims();
        let (k, out) = (dims[dims.len() - 1], self.weight.dim(0)?);
        let rows = x.elem_count() / k.max(1);
        let y = x
            .contiguous()?
            .reshape((rows, k))?
            .matmul(&self.weight.t()?)?;
        let y = match &self.bias {
            Some(b) => ember_ops::broadcast_add(&y, b)?,
            None => y,
        };
        let mut shape = dims.to_vec();
        *shape.last_mut().expect("a Linear input has a last dim") = out;
        y.reshape(shape)
    }
}

/// `torch.nn.Linear(cin, cout)` with PyTorch's default initialisation: weight and bias from
/// `U(-1/sqrt(cin), 1/sqrt(cin))` (kaiming_uniform with a = sqrt(5) reduces to this).
pub fn linear(vb: VarBuilder, cin: usize, cout: usize) -> Result<Linear> {
    let bound = 1.0 / (cin as f64).sqrt();
    let init = Init::Uniform {
        lo: -bound,
        up: bound,
    };
    let weight = vb.get_with_hints((cout, cin), "weight", init)?;
    let bias = vb.get_with_hints(cout, "bias", init)?;
    Ok(Linear::new(weight, Some(bias)))
}

/// A Linear whose weight starts from `init` and whose bias (if any) starts at 0.
fn zero_bias_linear(
    vb: VarBuilder,
    cin: usize,
    cout: usize,
    bias: bool,
    init: Init,
) -> Result<Linear> {
    let weight = vb.get_with_hints((cout, cin), "weight", init)?;
    let bias = if bias {
        Some(vb.get_with_hints(cout, "bias", Init::Const(0.0))?)
    } else {
        None
    };
    Ok(Linear::new(weight, bias))
}

/// A Linear initialised as timm's ViTs do: weight ~ N(0, std) (timm's `trunc_normal_` cuts
/// at +-2 absolute, which at std 0.02 never bites), bias 0 when there is one.
pub fn linear_normal(
    vb: VarBuilder,
    cin: usize,
    cout: usize,
    bias: bool,
    std: f64,
) -> Result<Linear> {
    let init = Init::Randn {
        mean: 0.0,
        stdev: std,
    };
    zero_bias_linear(vb, cin, cout, bias, init)
}

/// A Linear initialised as MAE-style pre-training does (official JAX ViT): weight from
/// Xavier-uniform, `U(+-sqrt(6 / (cin + cout)))`, bias 0 when there is one.
pub fn linear_xavier(vb: VarBuilder, cin: usize, cout: usize, bias: bool) -> Result<Linear> {
    let bound = (6.0 / (cin + cout) as f64).sqrt();
    let init = Init::Uniform {
        lo: -bound,
        up: bound,
    };
    zero_bias_linear(vb, cin, cout, bias, init)
}
