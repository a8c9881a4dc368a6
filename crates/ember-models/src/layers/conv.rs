use candle_core::{Module, Result, Tensor};
use candle_nn::{Init, VarBuilder};
use ember_ops::{conv2d, Conv2dParams, Pair};

/// `torch.nn.Conv2d` through `ember_ops::conv2d` (correct backward for every stride and
/// shape, fast grouped and depthwise kernels).
#[derive(Debug, Clone)]
pub struct Conv2d {
    weight: Tensor,
    bias: Option<Tensor>,
    params: Conv2dParams,
}

impl Conv2d {
    /// A `k x k` (or, given a pair, `kh x kw`) convolution from `cin` to `cout` channels;
    /// `init` is the weight's initialiser, the bias (if any) follows PyTorch's
    /// `U(-1/sqrt(fan_in), 1/sqrt(fan_in))`.
    pub fn new(
        vb: VarBuilder,
        cin: usize,
        cout: usize,
        k: impl Into<Pair>,
        params: Conv2dParams,
        bias: bool,
        init: Init,
    ) -> Result<Self> {
        let groups = params.groups.max(1);
        if !cin.is_multiple_of(groups) || !cout.is_multiple_of(groups) {
            candle_core::bail!("conv: {cin} -> {cout} channels do not split into {groups} groups")
        }
        let [kh, kw] = k.into().0;
        let weight = vb.get_with_hints((cout, cin / groups, kh, kw), "weight", init)?;
        let bias = if bias {
            let bound = 1.0 / ((cin / groups * kh * kw) as f64).sqrt();
            Some(vb.get_with_hints(
                cout,
                "bias",
                Init::Uniform {
                    lo: -bound,
                    up: bound,
                },
            )?)
        } else {
            None
        };
        Ok(Self {
            weight,
            bias,
            params,
        })
    }

    /// The weight `[cout, cin / groups, kh, kw]` (a variable when built from a var map).
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }

    pub fn params(&self) -> Conv2dParams {
        self.params
    }
}

impl Module for Conv2d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = conv2d(x, &self.weight, self.params)?;
        match &self.bias {
            Some(b) => y.broadcast_add(&b.reshape((1, (), 1, 1))?),
            None => Ok(y),
        }
    }
}
