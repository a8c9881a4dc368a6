//! Layer normalisation over the last dim (ViT tokens) or over the channels of a
//! channels-first tensor (ConvNeXt-style `LayerNorm2d`), with a fused backward.
//!
//! candle's `LayerNorm::forward` and `ops::layer_norm` record no gradient at all (the
//! gradient stops there, silently: candle issues #2168, #2977, #3011, #3569, #3752); its
//! `layer_norm_slow` is correct but builds the backward from a dozen elementwise ops. Here the
//! forward is one pass per row and the backward one op that returns the input, weight and
//! bias gradients together, on the CPU and (last-dim norm) on CUDA (`cuda/layer_norm.rs`).
//!
//! Both layouts are a `[outer, c, inner]` view normalised over `c`: `inner == 1` for the last
//! dim, `inner == h * w` for channels-first.

use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor, D};
use rayon::prelude::*;

use crate::cpu::{float_kernel, in_kernel_precision, zeros, Float, SharedMut};
use crate::simd;

/// `torch.nn.functional.layer_norm(x, [x.dim(-1)], gamma, beta, eps)`.
pub fn layer_norm(
    x: &Tensor,
    gamma: Option<&Tensor>,
    beta: Option<&Tensor>,
    eps: f64,
) -> Result<Tensor> {
    let c = x.dim(D::Minus1)?;
    let outer = x.elem_count() / c.max(1);
    apply(x, gamma, beta, eps, [outer, c, 1])
}

/// Layer norm over dim 1 of a channels-first tensor `[n, c, ...]` at every position (timm's
/// `LayerNorm2d`; with no weight and bias and the trailing dims flattened, an instance norm).
pub fn layer_norm_channels(
    x: &Tensor,
    gamma: Option<&Tensor>,
    beta: Option<&Tensor>,
    eps: f64,
) -> Result<Tensor> {
    if x.rank() < 2 {
        candle_core::bail!(
            "layer_norm_channels: needs a [n, c, ...] tensor, got {:?}",
            x.dims()
        )
    }
    let (n, c) = (x.dim(0)?, x.dim(1)?);
    apply(x, gamma, beta, eps, [n, c, x.elem_count() / (n * c).max(1)])
}

fn apply(
    x: &Tensor,
    gamma: Option<&Tensor>,
    beta: Option<&Tensor>,
    eps: f64,
    view: [usize; 3],
) -> Result<Tensor> {
    let c = view[1];
    for (name, p) in [("weight", gamma), ("bias", beta)] {
        if let Some(p) = p {
            if p.dims() != [c] {
                candle_core::bail!(
                    "layer norm: {name} has shape {:?}, expected [{c}]",
                    p.dims()
                )
            }
        }
    }
    // CUDA runs Ember's kernels for the last-dim norm in f32, bf16 and f16; the channels-first
    // norm, f64 there, and Metal run the composition.
    let on_cuda = crate::on_cuda_kernels(x) && view[2] == 1;
    #[cfg(feature = "cuda")]
    let on_cuda = on_cuda && c <= crate::cuda::layer_norm::MAX_CHANNELS;
    if !x.device().is_cpu() && !on_cuda {
        return composed::normalise(x, gamma, beta, eps, view);
    }
    let gamma = match gamma {
        Some(g) => g.to_dtype(x.dtype())?,
        None => Tensor::ones(c, x.dtype(), x.device())?,
    };
    let beta = match beta {
        Some(b) => b.to_dtype(x.dtype())?,
        None => Tensor::zeros(c, x.dtype(), x.device())?,
    };
    let op = |t: &[Tensor]| {
        t[0].contiguous()?.apply_op3(
            &t[1].contiguous()?,
            &t[2].contiguous()?,
            LayerNorm { view, eps },
        )
    };
    if on_cuda {
        return op(&[x.clone(), gamma, beta]);
    }
    in_kernel_precision(&[x, &gamma, &beta], op)
}

struct LayerNorm {
    view: [usize; 3],
    eps: f64,
}

/// `(x, gamma, dy) -> [dx (all elements), dgamma (c), dbeta (c)]` in one flat buffer.
struct LayerNormGrad {
    view: [usize; 3],
    eps: f64,
}

impl CustomOp3 for LayerNorm {
    fn name(&self) -> &'static str {
        "ember.layer_norm"
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
        let out = float_kernel!(self.name(), x = (s1, l1), g = (s2, l2), b = (s3, l3) => forward(x, g, b, self.view, self.eps))?;
        Ok((out, l1.shape().clone()))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
        s3: &candle_core::CudaStorage,
        l3: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        let y = crate::cuda::layer_norm::forward(
            [(s1, l1), (s2, l2), (s3, l3)],
            self.view[1],
            self.eps,
        )?;
        Ok((y, l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        beta: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let n = x.elem_count();
        let c = self.view[1];
        let packed = x.apply_op3_no_bwd(
            gamma,
            &grad.contiguous()?,
            &LayerNormGrad {
                view: self.view,
                eps: self.eps,
            },
        )?;
        let dx = x
            .track_op()
            .then(|| packed.narrow(0, 0, n)?.reshape(x.shape()));
        let dg = gamma.track_op().then(|| packed.narrow(0, n, c));
        let db = beta.track_op().then(|| packed.narrow(0, n + c, c));
        Ok((dx.transpose()?, dg.transpose()?, db.transpose()?))
    }
}

impl CustomOp3 for LayerNormGrad {
    fn name(&self) -> &'static str {
        "ember.layer_norm_backward"
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
        let out = float_kernel!(self.name(), x = (s1, l1), g = (s2, l2), dy = (s3, l3) => backward(x, g, dy, self.view, self.eps))?;
        Ok((out, Shape::from(n + 2 * self.view[1])))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
        s3: &candle_core::CudaStorage,
        l3: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        let n = l1.shape().elem_count();
        let c = self.view[1];
        let packed =
            crate::cuda::layer_norm::backward([(s1, l1), (s2, l2), (s3, l3)], c, self.eps)?;
        Ok((packed, Shape::from(n + 2 * c)))
    }
}

/// Positions (along `inner`) handled by one task of the channels-first kernels.
const INNER_CHUNK: usize = 256;
/// Minimum rows per task of the last-dim forward.
const MIN_ROWS: usize = 8;
/// Rows per task of the last-dim backward (fixed, so that its sums are reproducible).
const ROWS_PER_BLOCK: usize = 32;

/// The `(mean, 1 / std)` of a row.
fn moments<T: Float>(row: &[T], eps: f64) -> (T, T) {
    let c = T::from_f64(row.len() as f64);
    let mean = simd::sum(row) / c;
    let var = simd::sum_sq_dev(row, mean) / c;
    (mean, T::one() / (var + T::from_f64(eps)).sqrt())
}

/// Per-position `(mean, 1 / std)` over the `c` rows of a `[c, inner]` block, for the columns
/// `cols` of every row.
fn column_moments<T: Float>(
    x: &[T],
    c: usize,
    inner: usize,
    cols: std::ops::Range<usize>,
    eps: f64,
) -> (Vec<T>, Vec<T>) {
    let w = cols.len();
    let mut mean = zeros::<T>(w);
    for ci in 0..c {
        simd::add_assign(&mut mean, &x[ci * inner + cols.start..][..w]);
    }
    let inv_c = T::one() / T::from_f64(c as f64);
    mean.iter_mut().for_each(|m| *m *= inv_c);
    let mut var = zeros::<T>(w);
    for ci in 0..c {
        let row = &x[ci * inner + cols.start..][..w];
        for ((v, &xv), &m) in var.iter_mut().zip(row).zip(&mean) {
            *v += (xv - m) * (xv - m);
        }
    }
    let eps = T::from_f64(eps);
    let rstd = var
        .iter()
        .map(|&v| T::one() / (v * inv_c + eps).sqrt())
        .collect();
    (mean, rstd)
}

/// `[outer * (inner / INNER_CHUNK)]` tasks of the channels-first kernels.
fn column_tasks(outer: usize, inner: usize) -> Vec<(usize, std::ops::Range<usize>)> {
    (0..outer)
        .flat_map(|o| {
            (0..inner)
                .step_by(INNER_CHUNK)
                .map(move |j| (o, j..(j + INNER_CHUNK).min(inner)))
        })
        .collect()
}

fn forward<T: Float>(x: &[T], g: &[T], b: &[T], [outer, c, inner]: [usize; 3], eps: f64) -> Vec<T> {
    let mut y = vec![T::zero(); x.len()];
    if inner == 1 {
        y.par_chunks_mut(c)
            .with_min_len(MIN_ROWS)
            .zip(x.par_chunks(c))
            .for_each(|(y, x)| {
                let (mean, rstd) = moments(x, eps);
                for i in 0..c {
                    y[i] = (x[i] - mean) * rstd * g[i] + b[i];
                }
            });
        return y;
    }
    let out = SharedMut::new(&mut y);
    column_tasks(outer, inner)
        .into_par_iter()
        .for_each(|(o, cols)| {
            let block = &x[o * c * inner..][..c * inner];
            let (mean, rstd) = column_moments(block, c, inner, cols.clone(), eps);
            for ci in 0..c {
                let row = &block[ci * inner + cols.start..][..cols.len()];
                // SAFETY: tasks own disjoint (outer, column range) pairs, so these row pieces
                // are written by this task alone.
                let dst = unsafe { out.slice(o * c * inner + ci * inner + cols.start, cols.len()) };
                for j in 0..cols.len() {
                    dst[j] = (row[j] - mean[j]) * rstd[j] * g[ci] + b[ci];
                }
            }
        });
    y
}

/// `dx`, then `dgamma`, then `dbeta`, in one buffer:
/// `dx = rstd * (g dy - mean_c(g dy) - xhat * mean_c(g dy xhat))`,
/// `dgamma = sum(dy xhat)`, `dbeta = sum(dy)` over every position.
fn backward<T: Float>(
    x: &[T],
    g: &[T],
    dy: &[T],
    [outer, c, inner]: [usize; 3],
    eps: f64,
) -> Vec<T> {
    let n = x.len();
    let mut out = vec![T::zero(); n + 2 * c];
    let (dx, params) = out.split_at_mut(n);
    let inv_c = T::one() / T::from_f64(c as f64);
    // Each task returns its partial [dgamma, dbeta]; tasks are fixed-size blocks and the
    // partials are added in block order, so the sums do not depend on thread scheduling.
    let partials: Vec<Vec<T>> = if inner == 1 {
        let block = c * ROWS_PER_BLOCK;
        dx.par_chunks_mut(block)
            .zip(x.par_chunks(block).zip(dy.par_chunks(block)))
            .map(|(dx, (x, dy))| {
                let mut acc = zeros::<T>(2 * c);
                for ((dx, x), dy) in dx
                    .chunks_exact_mut(c)
                    .zip(x.chunks_exact(c))
                    .zip(dy.chunks_exact(c))
                {
                    let (mean, rstd) = moments(x, eps);
                    let (mut a, mut b) = (T::zero(), T::zero());
                    for i in 0..c {
                        let xhat = (x[i] - mean) * rstd;
                        let gdy = g[i] * dy[i];
                        a += gdy;
                        b += gdy * xhat;
                        acc[i] += dy[i] * xhat;
                        acc[c + i] += dy[i];
                    }
                    let (a, b) = (a * inv_c, b * inv_c);
                    for i in 0..c {
                        let xhat = (x[i] - mean) * rstd;
                        dx[i] = rstd * (g[i] * dy[i] - a - xhat * b);
                    }
                }
                acc
            })
            .collect()
    } else {
        let out = SharedMut::new(dx);
        column_tasks(outer, inner)
            .into_par_iter()
            .map(|(o, cols)| {
                let mut acc = zeros::<T>(2 * c);
                let base = o * c * inner;
                let block = &x[base..][..c * inner];
                let dblock = &dy[base..][..c * inner];
                let (mean, rstd) = column_moments(block, c, inner, cols.clone(), eps);
                let w = cols.len();
                let (mut a, mut b) = (zeros::<T>(w), zeros::<T>(w));
                for ci in 0..c {
                    let row = &block[ci * inner + cols.start..][..w];
                    let drow = &dblock[ci * inner + cols.start..][..w];
                    let (mut sg, mut sb) = (T::zero(), T::zero());
                    for j in 0..w {
                        let xhat = (row[j] - mean[j]) * rstd[j];
                        let gdy = g[ci] * drow[j];
                        a[j] += gdy;
                        b[j] += gdy * xhat;
                        sg += drow[j] * xhat;
                        sb += drow[j];
                    }
                    acc[ci] += sg;
                    acc[c + ci] += sb;
                }
                for ci in 0..c {
                    let row = &block[ci * inner + cols.start..][..w];
                    let drow = &dblock[ci * inner + cols.start..][..w];
                    // SAFETY: tasks own disjoint (outer, column range) pairs.
                    let dst = unsafe { out.slice(base + ci * inner + cols.start, w) };
                    for j in 0..w {
                        let xhat = (row[j] - mean[j]) * rstd[j];
                        dst[j] = rstd[j] * (g[ci] * drow[j] - a[j] * inv_c - xhat * b[j] * inv_c);
                    }
                }
                acc
            })
            .collect()
    };
    let mut partial = zeros::<T>(2 * c);
    for p in &partials {
        simd::add_assign(&mut partial, p);
    }
    params.copy_from_slice(&partial);
    out
}

/// Layer norm from candle ops with working gradients: the path for CUDA and Metal tensors
/// and the reference the CPU kernels are tested against.
pub mod composed {
    use super::*;

    pub(super) fn normalise(
        x: &Tensor,
        gamma: Option<&Tensor>,
        beta: Option<&Tensor>,
        eps: f64,
        [outer, c, inner]: [usize; 3],
    ) -> Result<Tensor> {
        let dtype = x.dtype();
        let work = crate::cpu::kernel_dtype(dtype);
        let v = x.to_dtype(work)?.reshape((outer, c, inner))?;
        let mean = v.mean_keepdim(1)?;
        let centred = v.broadcast_sub(&mean)?;
        let var = centred.sqr()?.mean_keepdim(1)?;
        let mut y = centred.broadcast_div(&(var + eps)?.sqrt()?)?;
        if let Some(g) = gamma {
            y = y.broadcast_mul(&g.to_dtype(work)?.reshape((1, c, 1))?)?;
        }
        if let Some(b) = beta {
            y = y.broadcast_add(&b.to_dtype(work)?.reshape((1, c, 1))?)?;
        }
        y.reshape(x.shape())?.to_dtype(dtype)
    }

    pub fn layer_norm(
        x: &Tensor,
        gamma: Option<&Tensor>,
        beta: Option<&Tensor>,
        eps: f64,
    ) -> Result<Tensor> {
        let c = x.dim(D::Minus1)?;
        normalise(x, gamma, beta, eps, [x.elem_count() / c.max(1), c, 1])
    }

    pub fn layer_norm_channels(
        x: &Tensor,
        gamma: Option<&Tensor>,
        beta: Option<&Tensor>,
        eps: f64,
    ) -> Result<Tensor> {
        let (n, c) = (x.dim(0)?, x.dim(1)?);
        normalise(x, gamma, beta, eps, [n, c, x.elem_count() / (n * c).max(1)])
    }
}
