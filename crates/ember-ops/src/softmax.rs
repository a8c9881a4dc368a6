//! Softmax along a dim with its backward. candle's fused `softmax_last_dim` records no
//! gradient (candle #1330 and the layer-norm issues); `candle_nn::ops::softmax` is correct
//! but takes five ops and five passes. Here: one pass forward (max, exp, sum, scale per row)
//! and one op backward, `dx = y * (dy - sum(dy * y))`.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor, D};
use rayon::prelude::*;

use crate::cpu::{float_kernel, in_kernel_precision, Float};
use crate::simd;

/// Minimum rows per task.
const MIN_ROWS: usize = 8;

/// Softmax over `dim` (negative dims count from the end).
pub fn softmax<Dim: candle_core::shape::Dim>(x: &Tensor, dim: Dim) -> Result<Tensor> {
    let dim = dim.to_index(x.shape(), "softmax")?;
    let last = x.rank() - 1;
    if dim != last {
        return softmax(&x.transpose(dim, last)?, D::Minus1)?.transpose(dim, last);
    }
    // CUDA runs Ember's kernels (f32, bf16, f16); f64 there and Metal run the composition.
    if crate::on_cuda_kernels(x) {
        return x.contiguous()?.apply_op1(Softmax);
    }
    if !x.device().is_cpu() {
        return composed::softmax(x, D::Minus1);
    }
    in_kernel_precision(&[x], |t| t[0].contiguous()?.apply_op1(Softmax))
}

struct Softmax;
struct SoftmaxGrad;

impl CustomOp1 for Softmax {
    fn name(&self) -> &'static str {
        "ember.softmax"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let n = *l.dims().last().unwrap_or(&1);
        let out = float_kernel!(self.name(), x = (s, l) => forward(x, n))?;
        Ok((out, l.shape().clone()))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s: &candle_core::CudaStorage,
        l: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        Ok((crate::cuda::softmax::forward(s, l)?, l.shape().clone()))
    }

    fn bwd(&self, _x: &Tensor, y: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(y.apply_op2_no_bwd(&grad.contiguous()?, &SoftmaxGrad)?))
    }
}

impl CustomOp2 for SoftmaxGrad {
    fn name(&self) -> &'static str {
        "ember.softmax_backward"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let n = *l1.dims().last().unwrap_or(&1);
        let out = float_kernel!(self.name(), y = (s1, l1), dy = (s2, l2) => backward(y, dy, n))?;
        Ok((out, l1.shape().clone()))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        let dx = crate::cuda::softmax::backward((s1, l1), (s2, l2))?;
        Ok((dx, l1.shape().clone()))
    }
}

fn forward<T: Float>(x: &[T], n: usize) -> Vec<T> {
    let mut y = vec![T::zero(); x.len()];
    if n == 0 {
        return y;
    }
    y.par_chunks_mut(n)
        .with_min_len(rows_per_task(n))
        .zip(x.par_chunks(n))
        .for_each(|(y, x)| {
            // A NaN is skipped by the max but turns the sum, hence the whole row, into NaN,
            // as in PyTorch.
            let max = simd::max(x);
            y.copy_from_slice(x);
            simd::shift_scale(y, max, T::one());
            T::exp_in_place(y);
            let inv = T::one() / simd::sum(y);
            simd::shift_scale(y, T::zero(), inv);
        });
    y
}

/// Rows per task: at least a few thousand elements, so that short rows (attention over 49
/// tokens) do not drown in scheduling.
fn rows_per_task(n: usize) -> usize {
    (4096 / n).max(MIN_ROWS)
}

fn backward<T: Float>(y: &[T], dy: &[T], n: usize) -> Vec<T> {
    let mut dx = vec![T::zero(); y.len()];
    if n == 0 {
        return dx;
    }
    dx.par_chunks_mut(n)
        .with_min_len(rows_per_task(n))
        .zip(y.par_chunks(n).zip(dy.par_chunks(n)))
        .for_each(|(dx, (y, dy))| {
            let s = simd::dot(y, dy);
            for i in 0..n {
                dx[i] = y[i] * (dy[i] - s);
            }
        });
    dx
}

/// Softmax from candle ops with working gradients (the Metal path and the reference).
pub mod composed {
    use super::*;

    pub fn softmax<Dim: candle_core::shape::Dim>(x: &Tensor, dim: Dim) -> Result<Tensor> {
        candle_nn::ops::softmax(x, dim)
    }
}
