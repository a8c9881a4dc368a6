//! Batch normalisation over dim 1 of `[n, c, ...]` (`torch.nn.BatchNorm1d/2d`), with a fused
//! backward for both modes.
//!
//! candle's `BatchNorm::forward_train` transposes the input to `[c, n*h*w]`, copies it, runs
//! about eight elementwise passes and hands back a transposed (non-contiguous) tensor that the
//! next conv must copy again; its backward is the chain of those ops. Here the statistics are
//! one pass, the normalisation one pass, and the backward one op that returns the input,
//! weight and bias gradients together.
//!
//! Usage, as a BatchNorm layer does it:
//! - training: `(mean, var) = batch_stats(x)`, update the running statistics from them
//!   (detached), then `batch_norm(x, &mean, &var, w, b, eps, Mode::Train)`: the gradient
//!   flows through the batch statistics as in PyTorch;
//! - evaluation: `batch_norm(x, &running_mean, &running_var, w, b, eps, Mode::Eval)`: the
//!   statistics are constants.

use candle_core::{CpuStorage, CustomOp1, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use crate::cpu::{float_kernel, in_kernel_precision, kernel_dtype, zeros, Float, SharedMut};
use crate::simd;

/// Where the statistics come from, which decides the gradient.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The statistics are the batch's own: the gradient flows through them.
    Train,
    /// The statistics are constants (running averages).
    Eval,
}

/// `[outer, c, inner]`: the view every kernel works on.
fn view(x: &Tensor) -> Result<[usize; 3]> {
    if x.rank() < 2 {
        candle_core::bail!("batch norm: needs a [n, c, ...] tensor, got {:?}", x.dims())
    }
    let (n, c) = (x.dim(0)?, x.dim(1)?);
    Ok([n, c, x.elem_count() / (n * c).max(1)])
}

/// The per-channel batch mean and biased variance of `x` `[n, c, ...]`, each `[c]`, without
/// gradient (use them through [`batch_norm`] with [`Mode::Train`]).
pub fn batch_stats(x: &Tensor) -> Result<(Tensor, Tensor)> {
    let v = view(x)?;
    let x = x.detach();
    let stats = if x.device().is_cpu() {
        in_kernel_precision(&[&x], |t| {
            t[0].contiguous()?.apply_op1_no_bwd(&Stats { view: v })
        })?
    } else {
        composed::stats(&x, v)?
    };
    Ok((stats.get(0)?, stats.get(1)?))
}

/// `(x - mean) / sqrt(var + eps) * weight + bias` per channel of `x` `[n, c, ...]`.
pub fn batch_norm(
    x: &Tensor,
    mean: &Tensor,
    var: &Tensor,
    weight: Option<&Tensor>,
    bias: Option<&Tensor>,
    eps: f64,
    mode: Mode,
) -> Result<Tensor> {
    let v = view(x)?;
    let c = v[1];
    for (name, p) in [
        ("mean", Some(mean)),
        ("var", Some(var)),
        ("weight", weight),
        ("bias", bias),
    ] {
        if let Some(p) = p {
            if p.dims() != [c] {
                candle_core::bail!(
                    "batch norm: {name} has shape {:?}, expected [{c}]",
                    p.dims()
                )
            }
        }
    }
    if !x.device().is_cpu() {
        return composed::normalise(x, mean, var, weight, bias, eps, mode);
    }
    let dtype = kernel_dtype(x.dtype());
    let weight = match weight {
        Some(w) => w.to_dtype(dtype)?,
        None => Tensor::ones(c, dtype, x.device())?,
    };
    let bias = match bias {
        Some(b) => b.to_dtype(dtype)?,
        None => Tensor::zeros(c, dtype, x.device())?,
    };
    let affine = Tensor::stack(&[&weight, &bias], 0)?;
    let stats = Tensor::stack(&[&mean.to_dtype(dtype)?, &var.to_dtype(dtype)?], 0)?.detach();
    in_kernel_precision(&[x], |t| {
        t[0].contiguous()?
            .apply_op3(&affine, &stats, BatchNorm { view: v, eps, mode })
    })
}

/// The statistics a training-mode batch norm normalised with, detached (for the running
/// averages).
#[derive(Debug, Clone)]
pub struct BatchStats {
    pub mean: Tensor,
    /// Biased (divided by `count`), as the normalisation uses it.
    pub var: Tensor,
    /// Values per channel they were taken over (over all ranks when synchronised).
    pub count: usize,
}

impl BatchStats {
    /// The unbiased variance PyTorch blends into `running_var`.
    pub fn unbiased_var(&self) -> Result<Tensor> {
        let n = self.count as f64;
        &self.var * (n / (n - 1.0).max(1.0))
    }
}

/// Training-mode batch norm in one call: `y` and the batch statistics. After
/// [`crate::sync_batch_norm::synchronise`] the statistics are the global batch's.
pub fn batch_norm_train(
    x: &Tensor,
    weight: Option<&Tensor>,
    bias: Option<&Tensor>,
    eps: f64,
) -> Result<(Tensor, BatchStats)> {
    if let Some(sum) = crate::sync_batch_norm::installed() {
        return crate::sync_batch_norm::batch_norm_train_synced(x, weight, bias, eps, sum);
    }
    let (mean, var) = batch_stats(x)?;
    let y = batch_norm(x, &mean, &var, weight, bias, eps, Mode::Train)?;
    let count = x.elem_count() / view(x)?[1].max(1);
    Ok((y, BatchStats { mean, var, count }))
}

struct Stats {
    view: [usize; 3],
}

impl CustomOp1 for Stats {
    fn name(&self) -> &'static str {
        "ember.batch_stats"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let out = float_kernel!(self.name(), x = (s, l) => stats(x, self.view))?;
        Ok((out, Shape::from((2, self.view[1]))))
    }
}

struct BatchNorm {
    view: [usize; 3],
    eps: f64,
    mode: Mode,
}

/// `(x, dy, [weight; bias; mean; var]) -> [dx (all elements), dweight (c), dbias (c)]`.
struct BatchNormGrad {
    view: [usize; 3],
    eps: f64,
    mode: Mode,
}

impl CustomOp3 for BatchNorm {
    fn name(&self) -> &'static str {
        "ember.batch_norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let out = float_kernel!(self.name(), x = (s1, l1), affine = (s2, l2), stats = (s3, l3) => forward(x, affine, stats, self.view, self.eps))?;
        Ok((out, l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        affine: &Tensor,
        stats: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let n = x.elem_count();
        let c = self.view[1];
        let params = Tensor::cat(&[affine, stats], 0)?;
        let grad_op = BatchNormGrad {
            view: self.view,
            eps: self.eps,
            mode: self.mode,
        };
        let packed = x.apply_op3_no_bwd(&grad.contiguous()?, &params, &grad_op)?;
        let dx = x
            .track_op()
            .then(|| packed.narrow(0, 0, n)?.reshape(x.shape()));
        let daffine = affine
            .track_op()
            .then(|| packed.narrow(0, n, 2 * c)?.reshape((2, c)));
        Ok((dx.transpose()?, daffine.transpose()?, None))
    }
}

impl CustomOp3 for BatchNormGrad {
    fn name(&self) -> &'static str {
        "ember.batch_norm_backward"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let n = l1.shape().elem_count();
        let out = float_kernel!(self.name(), x = (s1, l1), dy = (s2, l2), params = (s3, l3) => backward(x, dy, params, self.view, self.eps, self.mode))?;
        Ok((out, Shape::from(n + 2 * self.view[1])))
    }
}

/// The `outer` rows of channel `ci`.
fn rows<T>(x: &[T], [outer, c, inner]: [usize; 3], ci: usize) -> impl Iterator<Item = &[T]> {
    (0..outer).map(move |o| &x[(o * c + ci) * inner..][..inner])
}

fn stats<T: Float>(x: &[T], v: [usize; 3]) -> Vec<T> {
    let c = v[1];
    let count = T::from_f64((v[0] * v[2]).max(1) as f64);
    let per_channel: Vec<(T, T)> = (0..c)
        .into_par_iter()
        .map(|ci| {
            let mean = rows(x, v, ci).fold(T::zero(), |s, r| s + simd::sum(r)) / count;
            let var = rows(x, v, ci).fold(T::zero(), |s, r| s + simd::sum_sq_dev(r, mean)) / count;
            (mean, var)
        })
        .collect();
    per_channel
        .iter()
        .map(|p| p.0)
        .chain(per_channel.iter().map(|p| p.1))
        .collect()
}

fn forward<T: Float>(x: &[T], affine: &[T], stats: &[T], v: [usize; 3], eps: f64) -> Vec<T> {
    let [outer, c, inner] = v;
    let mut y = zeros::<T>(x.len());
    let out = SharedMut::new(&mut y);
    (0..c).into_par_iter().for_each(|ci| {
        let rstd = T::one() / (stats[c + ci] + T::from_f64(eps)).sqrt();
        let scale = affine[ci] * rstd;
        let shift = affine[c + ci] - stats[ci] * scale;
        for (o, row) in rows(x, v, ci).enumerate() {
            // SAFETY: each task writes only the rows of its own channel.
            let dst = unsafe { out.slice((o * c + ci) * inner, inner) };
            simd::affine_into(dst, scale, row, shift);
        }
    });
    let _ = outer;
    y
}

/// Train: `dx = g rstd (dy - mean(dy) - xhat mean(dy xhat))`; eval: `dx = g rstd dy`;
/// both: `dweight = sum(dy xhat)`, `dbias = sum(dy)` over batch and positions.
fn backward<T: Float>(
    x: &[T],
    dy: &[T],
    params: &[T],
    v: [usize; 3],
    eps: f64,
    mode: Mode,
) -> Vec<T> {
    let [_, c, inner] = v;
    let n = x.len();
    let count = T::from_f64((v[0] * v[2]).max(1) as f64);
    let mut out = zeros::<T>(n + 2 * c);
    let shared = SharedMut::new(&mut out);
    let (weight, mean, var) = (&params[..c], &params[2 * c..3 * c], &params[3 * c..]);
    let sums: Vec<(T, T)> = (0..c)
        .into_par_iter()
        .map(|ci| {
            let (m, rstd) = (mean[ci], T::one() / (var[ci] + T::from_f64(eps)).sqrt());
            let (mut sum_dy, mut sum_dy_xc) = (T::zero(), T::zero());
            for (xr, dyr) in rows(x, v, ci).zip(rows(dy, v, ci)) {
                sum_dy += simd::sum(dyr);
                sum_dy_xc += simd::dot_centred(xr, m, dyr);
            }
            let a = weight[ci] * rstd;
            let (b, shift) = match mode {
                Mode::Train => {
                    let b = -a * rstd * rstd * sum_dy_xc / count;
                    (b, -a * sum_dy / count - b * m)
                }
                Mode::Eval => (T::zero(), T::zero()),
            };
            for (o, (xr, dyr)) in rows(x, v, ci).zip(rows(dy, v, ci)).enumerate() {
                // SAFETY: each task writes only the rows of its own channel.
                let dst = unsafe { shared.slice((o * c + ci) * inner, inner) };
                simd::affine2_into(dst, a, dyr, b, xr, shift);
            }
            (sum_dy_xc * rstd, sum_dy)
        })
        .collect();
    for (ci, (dw, db)) in sums.into_iter().enumerate() {
        out[n + ci] = dw;
        out[n + c + ci] = db;
    }
    out
}

/// Batch norm from candle ops with working gradients: the path for CUDA and Metal tensors
/// and the reference the CPU kernels are tested against.
pub mod composed {
    use super::*;

    fn per_channel(t: &Tensor, rank: usize) -> Result<Tensor> {
        let mut dims = vec![1; rank];
        dims[1] = t.elem_count();
        t.reshape(dims)
    }

    /// Mean and biased variance over every dim but 1, differentiable.
    fn moments(x: &Tensor) -> Result<(Tensor, Tensor)> {
        let dims: Vec<usize> = (0..x.rank()).filter(|&d| d != 1).collect();
        let mean = x.mean_keepdim(dims.as_slice())?;
        let var = x
            .broadcast_sub(&mean)?
            .sqr()?
            .mean_keepdim(dims.as_slice())?;
        Ok((mean, var))
    }

    pub(super) fn stats(x: &Tensor, [_, c, _]: [usize; 3]) -> Result<Tensor> {
        let (mean, var) = moments(&x.to_dtype(kernel_dtype(x.dtype()))?)?;
        Tensor::stack(&[mean.reshape(c)?, var.reshape(c)?], 0)
    }

    pub fn normalise(
        x: &Tensor,
        mean: &Tensor,
        var: &Tensor,
        weight: Option<&Tensor>,
        bias: Option<&Tensor>,
        eps: f64,
        mode: Mode,
    ) -> Result<Tensor> {
        let dtype = x.dtype();
        let work = kernel_dtype(dtype);
        let xw = x.to_dtype(work)?;
        let r = x.rank();
        let (mean, var) = match mode {
            Mode::Train => moments(&xw)?,
            Mode::Eval => (
                per_channel(&mean.to_dtype(work)?.detach(), r)?,
                per_channel(&var.to_dtype(work)?.detach(), r)?,
            ),
        };
        scale_shift(&xw.broadcast_sub(&mean)?, &var, weight, bias, eps)?.to_dtype(dtype)
    }

    /// `centred / sqrt(var + eps) * weight + bias`, differentiable in every input: `centred`
    /// is `x - mean` in the working dtype, `var` shaped `[1, c, 1, ...]`.
    pub(crate) fn scale_shift(
        centred: &Tensor,
        var: &Tensor,
        weight: Option<&Tensor>,
        bias: Option<&Tensor>,
        eps: f64,
    ) -> Result<Tensor> {
        let (work, r) = (centred.dtype(), centred.rank());
        let mut y = centred.broadcast_div(&(var + eps)?.sqrt()?)?;
        if let Some(w) = weight {
            y = y.broadcast_mul(&per_channel(&w.to_dtype(work)?, r)?)?;
        }
        if let Some(b) = bias {
            y = y.broadcast_add(&per_channel(&b.to_dtype(work)?, r)?)?;
        }
        Ok(y)
    }
}
