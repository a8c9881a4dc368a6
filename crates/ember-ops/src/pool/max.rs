//! Max pooling. Forward keeps only the values; the backward recomputes each window's
//! argmax from the input (first maximum in scan order, NaN wins, as PyTorch) and routes the
//! whole output gradient there.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::{output_sizes, planes};
use crate::cpu::{float_kernel, in_kernel_precision, zeros, Float};
use crate::params::{pair_setters, Pair};

/// `torch.nn.MaxPool2d(kernel, stride, padding, dilation, ceil_mode)`; the stride defaults to
/// the kernel as in PyTorch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MaxPool2dParams {
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub padding: [usize; 2],
    pub dilation: [usize; 2],
    pub ceil_mode: bool,
}

impl MaxPool2dParams {
    pub fn new(kernel: impl Into<Pair>) -> Self {
        let kernel = kernel.into().0;
        Self {
            kernel,
            stride: kernel,
            padding: [0, 0],
            dilation: [1, 1],
            ceil_mode: false,
        }
    }

    pair_setters!(stride, padding, dilation);

    pub fn ceil_mode(mut self, ceil_mode: bool) -> Self {
        self.ceil_mode = ceil_mode;
        self
    }
}

/// Input rows (or columns) inside the image that each output row (or column) reads, in
/// scan order: the window of output `(oh, ow)` is `rows[oh] x cols[ow]`.
#[derive(Debug, Clone)]
struct AxisTaps {
    starts: Vec<usize>,
    index: Vec<usize>,
}

impl AxisTaps {
    fn new(
        input: usize,
        output: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
        dilation: usize,
    ) -> Self {
        let mut taps = Self {
            starts: vec![0],
            index: Vec::new(),
        };
        for o in 0..output {
            let inside = (0..kernel).filter_map(|k| {
                (o * stride + k * dilation)
                    .checked_sub(padding)
                    .filter(|&i| i < input)
            });
            taps.index.extend(inside);
            taps.starts.push(taps.index.len());
        }
        taps
    }

    fn of(&self, o: usize) -> &[usize] {
        &self.index[self.starts[o]..self.starts[o + 1]]
    }
}

/// The validated sizes of one max-pool call.
#[derive(Debug, Clone)]
struct Geometry {
    planes: usize,
    h: usize,
    w: usize,
    rows: AxisTaps,
    cols: AxisTaps,
}

impl Geometry {
    fn new(x: &Tensor, p: MaxPool2dParams) -> Result<Self> {
        let op = "max_pool2d";
        let (planes, h, w) = planes(op, x)?;
        let [ho, wo] = output_sizes(
            op,
            [h, w],
            p.kernel,
            p.stride,
            p.padding,
            p.dilation,
            p.ceil_mode,
        )?;
        let rows = AxisTaps::new(h, ho, p.kernel[0], p.stride[0], p.padding[0], p.dilation[0]);
        let cols = AxisTaps::new(w, wo, p.kernel[1], p.stride[1], p.padding[1], p.dilation[1]);
        Ok(Self {
            planes,
            h,
            w,
            rows,
            cols,
        })
    }

    fn ho(&self) -> usize {
        self.rows.starts.len() - 1
    }

    fn wo(&self) -> usize {
        self.cols.starts.len() - 1
    }

    /// Calls `f(output offset, input offset of the window's argmax)` for every output of a
    /// plane. The argmax is the first maximum in scan order, or the first NaN, as PyTorch.
    fn for_each_argmax<T: Float>(&self, plane: &[T], mut f: impl FnMut(usize, usize)) {
        let wo = self.wo();
        for oh in 0..self.ho() {
            let rows = self.rows.of(oh);
            for ow in 0..wo {
                let cols = self.cols.of(ow);
                let (mut best, mut best_v) = (
                    rows[0] * self.w + cols[0],
                    plane[rows[0] * self.w + cols[0]],
                );
                'scan: for &ih in rows {
                    for &iw in cols {
                        let i = ih * self.w + iw;
                        let v = plane[i];
                        if v.is_nan() {
                            best = i;
                            break 'scan;
                        }
                        if v > best_v {
                            (best, best_v) = (i, v);
                        }
                    }
                }
                f(oh * wo + ow, best);
            }
        }
    }

    fn out_dims(&self, x: &[usize]) -> Vec<usize> {
        let mut dims = x.to_vec();
        let n = dims.len();
        dims[n - 2] = self.ho();
        dims[n - 1] = self.wo();
        dims
    }
}

/// Max pooling over the last two dims of `x` (`[n, c, h, w]` or `[c, h, w]`).
pub fn max_pool2d(x: &Tensor, params: MaxPool2dParams) -> Result<Tensor> {
    let geometry = Geometry::new(x, params)?;
    if !x.device().is_cpu() {
        return composed::max_pool2d(x, params);
    }
    in_kernel_precision(&[x], |t| t[0].contiguous()?.apply_op1(MaxPool { geometry }))
}

struct MaxPool {
    geometry: Geometry,
}

/// `(x, dy) -> dx`
struct MaxPoolGrad {
    geometry: Geometry,
}

impl CustomOp1 for MaxPool {
    fn name(&self) -> &'static str {
        "ember.max_pool2d"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let g = &self.geometry;
        let (plane_in, plane_out) = (g.h * g.w, g.ho() * g.wo());
        let out = float_kernel!(self.name(), x = (s, l) => {
            let mut y = zeros::<T>(g.planes * plane_out);
            y.par_chunks_mut(plane_out.max(1)).enumerate().for_each(|(p, y)| {
                let plane = &x[p * plane_in..][..plane_in];
                g.for_each_argmax(plane, |o, i| y[o] = plane[i]);
            });
            y
        })?;
        Ok((out, Shape::from(g.out_dims(l.dims()))))
    }

    fn bwd(&self, x: &Tensor, _y: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(x.apply_op2_no_bwd(
            &grad.contiguous()?,
            &MaxPoolGrad {
                geometry: self.geometry.clone(),
            },
        )?))
    }
}

impl CustomOp2 for MaxPoolGrad {
    fn name(&self) -> &'static str {
        "ember.max_pool2d_backward"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let g = &self.geometry;
        let (plane_in, plane_out) = (g.h * g.w, g.ho() * g.wo());
        let out = float_kernel!(self.name(), x = (s1, l1), dy = (s2, l2) => {
            let mut dx = zeros::<T>(x.len());
            dx.par_chunks_mut(plane_in.max(1)).enumerate().for_each(|(p, dx)| {
                let plane = &x[p * plane_in..][..plane_in];
                let dyp = &dy[p * plane_out..][..plane_out];
                g.for_each_argmax(plane, |o, i| dx[i] += dyp[o]);
            });
            dx
        })?;
        Ok((out, l1.shape().clone()))
    }
}

/// Max pooling from candle ops: pad with -inf, one strided view per kernel tap, max over the
/// taps. (candle's `max` gives the gradient to every tied maximum, where the kernel picks
/// the first; they agree whenever the window maximum is unique.)
pub mod composed {
    use super::*;
    use crate::strided::take_strided;

    fn pad_neg_inf(x: &Tensor, dim: usize, lo: usize, hi: usize) -> Result<Tensor> {
        let block = |n: usize| -> Result<Tensor> {
            let mut dims = x.dims().to_vec();
            dims[dim] = n;
            Tensor::full(f32::NEG_INFINITY, dims, x.device())?.to_dtype(x.dtype())
        };
        let mut parts = Vec::with_capacity(3);
        if lo > 0 {
            parts.push(block(lo)?);
        }
        parts.push(x.clone());
        if hi > 0 {
            parts.push(block(hi)?);
        }
        Tensor::cat(&parts, dim)
    }

    pub fn max_pool2d(x: &Tensor, p: MaxPool2dParams) -> Result<Tensor> {
        let g = Geometry::new(x, p)?;
        let (ho, wo) = (g.ho(), g.wo());
        let (r, c) = (x.rank() - 2, x.rank() - 1);
        // Pad so that every window, including a ceil-mode window hanging past the end, fits.
        let need =
            |o: usize, a: usize| (o - 1) * p.stride[a] + p.dilation[a] * (p.kernel[a] - 1) + 1;
        let hi_h = need(ho, 0).saturating_sub(g.h + p.padding[0]);
        let hi_w = need(wo, 1).saturating_sub(g.w + p.padding[1]);
        let padded = pad_neg_inf(
            &pad_neg_inf(x, r, p.padding[0], hi_h)?,
            c,
            p.padding[1],
            hi_w,
        )?;
        let mut taps = Vec::with_capacity(p.kernel[0] * p.kernel[1]);
        for ki in 0..p.kernel[0] {
            let rows = take_strided(&padded, r, ki * p.dilation[0], ho, p.stride[0])?;
            for kj in 0..p.kernel[1] {
                taps.push(take_strided(&rows, c, kj * p.dilation[1], wo, p.stride[1])?);
            }
        }
        Tensor::stack(&taps, 0)?.max(0)
    }
}
