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
