//! Layers that store a maximum width and run any contiguous range of their channels: the
//! building blocks of width-search supernets (BCNet's left and right paths, AutoSlim's left
//! one). A weight slice is a view of the stored parameter, so its gradient lands in the
//! slice and the rest of the parameter gets zero gradient, as a partially used parameter in
//! PyTorch. BatchNorm keeps one set of running statistics over the stored channels and a
//! slice's update writes into its own range only.
//!
//! A network of these layers at full slices is an ordinary network with the stored widths,
//! under the same parameter names (`weight`, `bias`, `running_mean`, `running_var`).

use candle_core::{Result, Tensor};
use candle_nn::{Init, VarBuilder};
use ember_ops::{batch_norm, batch_norm_train, conv2d, BatchNormMode, Conv2dParams};

/// Channels `start..start + len` of a layer's stored channels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Slice {
    pub start: usize,
    pub len: usize,
}

impl Slice {
    /// The first `len` channels (AutoSlim's and BCNet's left path).
    pub fn left(len: usize) -> Self {
        Self { start: 0, len }
    }

    /// The last `len` of `stored` channels (BCNet's right path).
    pub fn right(stored: usize, len: usize) -> Self {
        Self {
            start: stored - len,
            len,
        }
    }

    pub fn end(&self) -> usize {
        self.start + self.len
    }

    fn check(&self, stored: usize, what: &str) -> Result<()> {
        if self.len == 0 || self.end() > stored {
            candle_core::bail!(
                "{what}: channels {}..{} of {stored} stored",
                self.start,
                self.end()
            )
        }
        Ok(())
    }
}

/// A bias-free `k x k` convolution with "same" padding over sliced input and output
/// channels; a depthwise one runs one filter per channel of its (single) slice.
#[derive(Debug, Clone)]
pub struct SlicedConv2d {
    /// `[out, in, k, k]`, or `[channels, 1, k, k]` depthwise.
    weight: Tensor,
    stride: usize,
    depthwise: bool,
}

impl SlicedConv2d {
    pub fn new(
        vb: VarBuilder,
        c_in: usize,
        c_out: usize,
        k: usize,
        stride: usize,
        init: Init,
    ) -> Result<Self> {
        Ok(Self {
            weight: vb.get_with_hints((c_out, c_in, k, k), "weight", init)?,
            stride,
            depthwise: false,
        })
    }

    pub fn depthwise(
        vb: VarBuilder,
        channels: usize,
        k: usize,
        stride: usize,
        init: Init,
    ) -> Result<Self> {
        Ok(Self {
            weight: vb.get_with_hints((channels, 1, k, k), "weight", init)?,
            stride,
            depthwise: true,
        })
    }

    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// `x` holds the `input` channels; the result the `output` ones (a depthwise conv takes
    /// the same slice for both).
    pub fn forward(&self, x: &Tensor, input: Slice, output: Slice) -> Result<Tensor> {
        let (stored_out, stored_in, k, _) = self.weight.dims4()?;
        output.check(stored_out, "sliced conv output")?;
        let (weight, groups) = if self.depthwise {
            if input != output {
                candle_core::bail!("depthwise conv: input {input:?} and output {output:?} differ")
            }
            (self.weight.narrow(0, output.start, output.len)?, output.len)
        } else {
            input.check(stored_in, "sliced conv input")?;
            let w = self.weight.narrow(0, output.start, output.len)?;
            (w.narrow(1, input.start, input.len)?.contiguous()?, 1)
        };
        if x.dim(1)? != input.len {
            candle_core::bail!(
                "sliced conv: input has {} channels, the slice {}",
                x.dim(1)?,
                input.len
            )
        }
        let params = Conv2dParams::default()
            .stride(self.stride)
            .padding(k / 2)
            .groups(groups);
        conv2d(x, &weight, params)
    }
}

/// `BatchNorm2d` (eps 1e-5) over a slice of its stored channels, with a running-statistics
/// momentum the caller chooses per call (0.1 in training; `1 / n` for the n-th batch of a
/// cumulative re-calibration).
#[derive(Debug, Clone)]
pub struct SlicedBatchNorm2d {
    weight: Tensor,
    bias: Tensor,
    running_mean: Tensor,
    running_var: Tensor,
}

const EPS: f64 = 1e-5;

impl SlicedBatchNorm2d {
    pub fn new(vb: VarBuilder, channels: usize) -> Result<Self> {
        Ok(Self {
            weight: vb.get_with_hints(channels, "weight", Init::Const(1.0))?,
            bias: vb.get_with_hints(channels, "bias", Init::Const(0.0))?,
            running_mean: vb.get_with_hints(channels, "running_mean", Init::Const(0.0))?,
            running_var: vb.get_with_hints(channels, "running_var", Init::Const(1.0))?,
        })
    }

    /// Training mode (batch statistics, the slice's running averages moved by `momentum`;
    /// `None` leaves them) or evaluation mode (running statistics).
    pub fn forward(
        &self,
        x: &Tensor,
        slice: Slice,
        train: bool,
        momentum: Option<f64>,
    ) -> Result<Tensor> {
        slice.check(self.weight.dim(0)?, "sliced batch norm")?;
        let part = |t: &Tensor| t.narrow(0, slice.start, slice.len);
        let (w, b) = (part(&self.weight)?, part(&self.bias)?);
        if !train {
            let (mean, var) = (part(&self.running_mean)?, part(&self.running_var)?);
            return batch_norm(x, &mean, &var, Some(&w), Some(&b), EPS, BatchNormMode::Eval);
        }
        let (y, stats) = batch_norm_train(x, Some(&w), Some(&b), EPS)?;
        if let Some(m) = momentum {
            self.blend(&self.running_mean, &stats.mean, slice, m)?;
            self.blend(&self.running_var, &stats.unbiased_var()?, slice, m)?;
        }
        Ok(y)
    }

    fn blend(&self, stat: &Tensor, new: &Tensor, slice: Slice, momentum: f64) -> Result<()> {
        // Constants (weights loaded for inference) have nothing to update.
        if !stat.is_variable() {
            return Ok(());
        }
        let old = stat.narrow(0, slice.start, slice.len)?;
        let blended = ((old * (1.0 - momentum))? + (new.to_dtype(stat.dtype())? * momentum)?)?;
        stat.slice_set(&blended.contiguous()?, 0, slice.start)
    }

    /// Running mean 0 and variance 1 over every stored channel (before re-calibration).
    pub fn reset_running(&self) -> Result<()> {
        for (stat, value) in [(&self.running_mean, 0.0), (&self.running_var, 1.0)] {
            if stat.is_variable() {
                let fill = (stat.ones_like()? * value)?;
                stat.slice_set(&fill, 0, 0)?;
            }
        }
        Ok(())
    }
}

/// A linear layer with bias over a slice of its stored inputs (the classifier after global
/// pooling; its outputs are the classes, never sliced).
#[derive(Debug, Clone)]
pub struct SlicedLinear {
    weight: Tensor,
    bias: Tensor,
}

impl SlicedLinear {
    /// PyTorch's default init: weight and bias `U(-1/sqrt(in), 1/sqrt(in))`.
    pub fn new(vb: VarBuilder, inputs: usize, outputs: usize) -> Result<Self> {
        let bound = 1.0 / (inputs as f64).sqrt();
        let init = Init::Uniform {
            lo: -bound,
            up: bound,
        };
        Ok(Self {
            weight: vb.get_with_hints((outputs, inputs), "weight", init)?,
            bias: vb.get_with_hints(outputs, "bias", init)?,
        })
    }

    /// `x` `[n, input.len]`.
    pub fn forward(&self, x: &Tensor, input: Slice) -> Result<Tensor> {
        input.check(self.weight.dim(1)?, "sliced linear input")?;
        let w = self.weight.narrow(1, input.start, input.len)?;
        ember_ops::broadcast_add(&x.matmul(&w.t()?)?, &self.bias)
    }
}
