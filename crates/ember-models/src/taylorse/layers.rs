//! TaylorSENet's building blocks: PReLU, the eps-1 instance norm, gated (de)convs and the
//! inner conv/deconv units. Every 2-D layer strides (1, 2): time is kept, frequency halves
//! (or doubles), and time kernels longer than one frame are made causal by zero frames at
//! the start (convs) or by dropping the last frames (transposed convs).

use candle_core::{Result, Tensor};
use candle_nn::{Init, VarBuilder};
use ember_ops::{conv2d, conv_transpose2d, Conv2dParams};

/// The official norm: `nn.InstanceNorm{1,2}d(C, True)` puts True in eps, so it normalises
/// each (sample, channel) over all its positions with eps = 1, biased variance, no affine.
pub fn instance_norm(x: &Tensor) -> Result<Tensor> {
    let (b, c) = (x.dim(0)?, x.dim(1)?);
    let flat = x.contiguous()?.reshape((b * c, ()))?;
    ember_ops::layer_norm(&flat, None, None, 1.0)?.reshape(x.shape())
}

/// `nn.PReLU(C)`: one slope per channel (dim 1), 0.25 at init.
#[derive(Debug, Clone)]
pub struct PRelu {
    slope: Tensor,
}

impl PRelu {
    pub fn new(vb: VarBuilder, channels: usize) -> Result<Self> {
        Ok(Self {
            slope: vb.get_with_hints(channels, "weight", Init::Const(0.25))?,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        // relu(x) + a (x - relu(x)): gradients through relu only (candle's maximum/minimum
        // split the gradient at ties).
        let pos = x.relu()?;
        let mut shape = vec![1; x.rank()];
        shape[1] = self.slope.elem_count();
        ember_ops::broadcast_mul(&(x - &pos)?, &self.slope.reshape(shape)?)? + pos
    }
}

/// Instance norm then PReLU: the tail of every 2-D layer.
#[derive(Debug, Clone)]
pub struct NormAct {
    act: PRelu,
}

impl NormAct {
    pub fn new(vb: VarBuilder, channels: usize) -> Result<Self> {
        Ok(Self {
            act: PRelu::new(vb, channels)?,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.act.forward(&instance_norm(x)?)
    }
}

fn stride_freq() -> Conv2dParams {
    Conv2dParams::default().stride((1, 2))
}

/// PyTorch's default init for conv weights (kaiming-uniform with a = sqrt(5)) and biases:
/// U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
fn uniform(fan_in: usize) -> Init {
    let bound = 1.0 / (fan_in as f64).sqrt();
    Init::Uniform {
        lo: -bound,
        up: bound,
    }
}

/// A (1, 2)-strided conv with bias, causal in time: y[t] sees x[t - kt + 1 ..= t].
#[derive(Debug, Clone)]
pub struct CausalConv {
    weight: Tensor,
    bias: Tensor,
}

impl CausalConv {
    pub fn new(vb: VarBuilder, cin: usize, cout: usize, k: [usize; 2]) -> Result<Self> {
        let init = uniform(cin * k[0] * k[1]);
        Ok(Self {
            weight: vb.get_with_hints((cout, cin, k[0], k[1]), "weight", init)?,
            bias: vb.get_with_hints(cout, "bias", init)?,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let kt = self.weight.dim(2)?;
        let x = if kt > 1 {
            x.pad_with_zeros(2, kt - 1, 0)?
        } else {
            x.clone()
        };
        let y = conv2d(&x, &self.weight, stride_freq())?;
        ember_ops::broadcast_add(&y, &self.bias.reshape((1, (), 1, 1))?)
    }
}

/// A (1, 2)-strided transposed conv with bias, its last kt - 1 frames dropped (causal).
#[derive(Debug, Clone)]
pub struct CausalDeconv {
    weight: Tensor,
    bias: Tensor,
}

impl CausalDeconv {
    pub fn new(vb: VarBuilder, cin: usize, cout: usize, k: [usize; 2]) -> Result<Self> {
        // ConvTranspose2d's weight is (cin, cout, kt, kf) and its fan-in is taken as cout x k.
        let init = uniform(cout * k[0] * k[1]);
        Ok(Self {
            weight: vb.get_with_hints((cin, cout, k[0], k[1]), "weight", init)?,
            bias: vb.get_with_hints(cout, "bias", init)?,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = conv_transpose2d(x, &self.weight, stride_freq(), 0)?;
        let y = ember_ops::broadcast_add(&y, &self.bias.reshape((1, (), 1, 1))?)?;
        let kt = self.weight.dim(2)?;
        if kt > 1 {
            y.narrow(2, 0, y.dim(2)? - (kt - 1))
        } else {
            Ok(y)
        }
    }
}

/// `value * sigmoid(gate)` of the two channel halves of `y`.
fn gated(y: &Tensor) -> Result<Tensor> {
    let half = y.dim(1)? / 2;
    y.narrow(1, 0, half)? * candle_nn::ops::sigmoid(&y.narrow(1, half, half)?)?
}

// Official parameter names: with a time kernel kt > 1 a conv sits after its pad in an
// `nn.Sequential` (index 1) and a transposed conv before its chomp (index 0); with kt = 1 the
// gated layers hold the conv itself and the units start at index 0.

/// `GateConv2d`: a causal conv to 2 x cout channels, gated.
#[derive(Debug, Clone)]
pub struct GateConv {
    conv: CausalConv,
}

impl GateConv {
    pub fn new(vb: VarBuilder, cin: usize, cout: usize, k: [usize; 2]) -> Result<Self> {
        let vb = vb.pp("conv");
        let vb = if k[0] > 1 { vb.pp("1") } else { vb };
        Ok(Self {
            conv: CausalConv::new(vb, cin, 2 * cout, k)?,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        gated(&self.conv.forward(x)?)
    }
}

/// `GateConvTranspose2d`: a causal transposed conv to 2 x cout channels, gated.
#[derive(Debug, Clone)]
pub struct GateDeconv {
    deconv: CausalDeconv,
}

impl GateDeconv {
    pub fn new(vb: VarBuilder, cin: usize, cout: usize, k: [usize; 2]) -> Result<Self> {
        let vb = vb.pp("conv");
        let vb = if k[0] > 1 { vb.pp("0") } else { vb };
        Ok(Self {
            deconv: CausalDeconv::new(vb, cin, 2 * cout, k)?,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        gated(&self.deconv.forward(x)?)
    }
}

/// `Conv2dunit`: causal conv c -> c (k2), norm, PReLU; Sequential [pad,] conv, norm, PReLU.
#[derive(Debug, Clone)]
pub struct ConvUnit {
    conv: CausalConv,
    tail: NormAct,
}

impl ConvUnit {
    pub fn new(vb: VarBuilder, c: usize, k: [usize; 2]) -> Result<Self> {
        let vb = vb.pp("conv");
        let first = usize::from(k[0] > 1);
        Ok(Self {
            conv: CausalConv::new(vb.pp(first), c, c, k)?,
            tail: NormAct::new(vb.pp(first + 2), c)?,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.tail.forward(&self.conv.forward(x)?)
    }
}

/// `Deconv2dunit`: causal transposed conv cin -> c (k2), norm, PReLU; Sequential deconv,
/// [chomp,] norm, PReLU.
#[derive(Debug, Clone)]
pub struct DeconvUnit {
    deconv: CausalDeconv,
    tail: NormAct,
}

impl DeconvUnit {
    pub fn new(vb: VarBuilder, cin: usize, c: usize, k: [usize; 2]) -> Result<Self> {
        let vb = vb.pp("deconv");
        let chomp = usize::from(k[0] > 1);
        Ok(Self {
            deconv: CausalDeconv::new(vb.pp(0), cin, c, k)?,
            tail: NormAct::new(vb.pp(chomp + 2), c)?,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.tail.forward(&self.deconv.forward(x)?)
    }
}

/// A (B, C, T, F) feature as the sequence models read it: (B, C x F, T), row = ch x F + f.
pub fn to_sequence(x: &Tensor) -> Result<Tensor> {
    let (b, c, t, f) = x.dims4()?;
    x.transpose(2, 3)?.contiguous()?.reshape((b, c * f, t))
}

/// The inverse of [`to_sequence`] for `channels` channels.
pub fn from_sequence(x: &Tensor, channels: usize) -> Result<Tensor> {
    let (b, d, t) = x.dims3()?;
    x.reshape((b, channels, d / channels, t))?
        .transpose(2, 3)?
        .contiguous()
}
