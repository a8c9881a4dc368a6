use candle_core::{ModuleT, Result, Tensor};
use candle_nn::{Init, VarBuilder};

use crate::layers::BatchNorm2d;

/// LEWEL's `MLP1D` with two layers: `mlp.0` Conv1d(in, hid, 1, bias=False) -> `mlp.1`
/// BatchNorm1d(hid) -> ReLU -> `mlp.3` Conv1d(hid, out, 1, bias=False), on `[n, c, l]`
/// tensors. A 1x1 Conv1d is a matrix product over the channel axis; the
/// batch norm takes its statistics over `n` and `l` (our batch-norm op works on any `[n, c,
/// ...]`, so BatchNorm1d is the same layer as BatchNorm2d).
#[derive(Debug, Clone)]
pub struct Mlp1d {
    w0: Tensor,
    bn: BatchNorm2d,
    w3: Tensor,
}

/// LEWEL's `init_weights`: Kaiming-normal with fan-out (gain sqrt 2); for a kernel-1 Conv1d
/// the fan-out is the output width.
fn conv1x1(vb: &VarBuilder, name: &str, cin: usize, cout: usize) -> Result<Tensor> {
    let stdev = (2.0 / cout as f64).sqrt();
    vb.get_with_hints((cout, cin, 1), name, Init::Randn { mean: 0.0, stdev })
}

impl Mlp1d {
    pub fn new(vb: VarBuilder, dim_in: usize, hidden: usize, dim_out: usize) -> Result<Self> {
        let vb = vb.pp("mlp");
        Ok(Self {
            w0: conv1x1(&vb, "0.weight", dim_in, hidden)?,
            bn: BatchNorm2d::new(vb.pp("1"), hidden)?,
            w3: conv1x1(&vb, "3.weight", hidden, dim_out)?,
        })
    }

    /// The output width.
    pub fn dim_out(&self) -> usize {
        self.w3.dims()[0]
    }
}

/// `w [out, in, 1]` applied to `x [n, in, l]`: `[n, out, l]`, as one GEMM over the `n * l`
/// positions (a batched product would broadcast the weight to every sample, copying it `n`
/// times each way).
fn pointwise(w: &Tensor, x: &Tensor) -> Result<Tensor> {
    let (n, c, l) = x.dims3()?;
    let out = w.dim(0)?;
    let rows = x.transpose(1, 2)?.contiguous()?.reshape((n * l, c))?;
    rows.matmul(&w.squeeze(2)?.t()?)?
        .reshape((n, l, out))?
        .transpose(1, 2)?
        .contiguous()
}

impl ModuleT for Mlp1d {
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let h = self.bn.forward_t(&pointwise(&self.w0, x)?, train)?.relu()?;
        pointwise(&self.w3, &h)
    }
}
