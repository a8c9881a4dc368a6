use candle_core::Result;
use candle_nn::{Init, Linear, VarBuilder};

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

/// A Linear initialised as timm's ViTs do: weight ~ N(0, std) (timm's `trunc_normal_` cuts
/// at +-2 absolute, which at std 0.02 never bites), bias 0 when there is one.
pub fn linear_normal(
    vb: VarBuilder,
    cin: usize,
    cout: usize,
    bias: bool,
    std: f64,
) -> Result<Linear> {
    let weight = vb.get_with_hints(
        (cout, cin),
        "weight",
        Init::Randn {
            mean: 0.0,
            stdev: std,
        },
    )?;
    let bias = if bias {
        Some(vb.get_with_hints(cout, "bias", Init::Const(0.0))?)
    } else {
        None
    };
    Ok(Linear::new(weight, bias))
}
