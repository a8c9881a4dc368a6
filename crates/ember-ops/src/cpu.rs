//! Plumbing shared by the CPU kernels: the element trait, reading a storage as a slice,
//! dispatching on dtype, and handing disjoint output regions to parallel tasks.

use candle_core::{CpuStorage, DType, Layout, Result, Tensor, WithDType};

/// The float types the kernels are written for: f32 for training, f64 for gradient checks.
pub(crate) trait Float: WithDType + num_traits::Float + Send + Sync + 'static {
    /// `v[i] = exp(v[i])`.
    fn exp_in_place(v: &mut [Self]);
}

impl Float for f32 {
    fn exp_in_place(v: &mut [Self]) {
        crate::simd::exp_f32_in_place(v)
    }
}

impl Float for f64 {
    /// The exact libm exp: gradient checks difference f64 results at 1e-6 steps, where an
    /// approximation's error would show.
    fn exp_in_place(v: &mut [Self]) {
        v.iter_mut().for_each(|x| *x = x.exp());
    }
}

/// The contiguous elements of a storage under `layout`. Public ops make their inputs
/// contiguous before applying a custom op, so anything else is a bug in this crate.
pub(crate) fn slice<'a, T: WithDType>(
    storage: &'a CpuStorage,
    layout: &Layout,
    op: &'static str,
) -> Result<&'a [T]> {
    let data = storage.as_slice::<T>()?;
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => Err(candle_core::Error::RequiresContiguous { op }),
    }
}

/// Runs `$body` with `$t` bound to the Rust type of `$storage`'s dtype (f32 or f64).
macro_rules! with_float_type {
    ($storage:expr, $op:expr, |$t:ident| $body:expr) => {
        match $storage {
            candle_core::CpuStorage::F32(_) => {
                type $t = f32;
                $body
            }
            candle_core::CpuStorage::F64(_) => {
                type $t = f64;
                $body
            }
            other => Err(candle_core::Error::UnsupportedDTypeForOp(
                candle_core::backend::BackendStorage::dtype(other),
                $op,
            )),
        }
    };
}
pub(crate) use with_float_type;

/// The body of every `cpu_fwd`: reads each `(storage, layout)` as a slice of the first
/// storage's float type (f32 or f64, bound to `T`) and wraps the `Vec<T>` that `$body`
/// returns as candle storage.
///
/// `float_kernel!(self.name(), x = (s1, l1), w = (s2, l2) => forward(x, w, g))`
macro_rules! float_kernel {
    ($op:expr, $first:ident = ($s0:expr, $l0:expr) $(, $name:ident = ($s:expr, $l:expr))* => $body:expr) => {
        $crate::cpu::with_float_type!($s0, $op, |T| {
            let $first = $crate::cpu::slice::<T>($s0, $l0, $op)?;
            $(let $name = $crate::cpu::slice::<T>($s, $l, $op)?;)*
            Ok($crate::cpu::storage::<T>($body))
        })
    };
}
pub(crate) use float_kernel;

/// A zeroed buffer whose pages are already written. `vec![0.0; n]` maps the kernel's shared
/// zero page and takes a copy-on-write fault (with a TLB shootdown across the worker threads)
/// on the first write to every page, which made col2im-style accumulation several times
/// slower than the GEMM feeding it (measured with `perf` on the conv input gradient).
pub(crate) fn zeros<T: Float>(n: usize) -> Vec<T> {
    let mut v = Vec::with_capacity(n);
    v.resize(n, T::zero());
    v
}

/// A new vector of `n` elements filled in parallel, `chunk` at a time, by `fill(offset,
/// chunk)`, without first writing zeros (for element-wise kernels the zeroing pass cost as
/// much as the kernel).
///
/// # Safety
///
/// `fill` must write every element of each chunk it is given.
pub(crate) unsafe fn par_fill<T: Send>(
    n: usize,
    chunk: usize,
    fill: impl Fn(usize, &mut [std::mem::MaybeUninit<T>]) + Sync + Send,
) -> Vec<T> {
    use rayon::prelude::*;
    let mut v: Vec<std::mem::MaybeUninit<T>> = Vec::with_capacity(n);
    // SAFETY: `MaybeUninit` elements need no initialisation.
    unsafe { v.set_len(n) };
    v.par_chunks_mut(chunk.max(1))
        .enumerate()
        .for_each(|(i, c)| fill(i * chunk.max(1), c));
    let mut v = std::mem::ManuallyDrop::new(v);
    // SAFETY: every element was written (the caller's contract), and `MaybeUninit<T>` has
    // `T`'s size and alignment, so the allocation is a valid `Vec<T>` of the same length.
    unsafe { Vec::from_raw_parts(v.as_mut_ptr() as *mut T, v.len(), v.capacity()) }
}

/// Wraps a kernel's output vector as candle storage.
pub(crate) fn storage<T: WithDType>(data: Vec<T>) -> CpuStorage {
    T::to_cpu_storage_owned(data)
}

/// The precision the kernels (and the composed paths' reductions) compute in: f16 and bf16
/// widen to f32, f32 and f64 stay.
pub(crate) fn kernel_dtype(dtype: DType) -> DType {
    match dtype {
        DType::F16 | DType::BF16 => DType::F32,
        d => d,
    }
}

/// Runs `f` on `xs` in the kernels' precision: f16/bf16 inputs go through f32 (the kernels
/// are f32/f64 only) and the result is cast back. The casts are differentiable.
pub(crate) fn in_kernel_precision(
    xs: &[&Tensor],
    f: impl FnOnce(&[Tensor]) -> Result<Tensor>,
) -> Result<Tensor> {
    let dtype = xs[0].dtype();
    match dtype {
        DType::F32 | DType::F64 => f(&xs.iter().map(|x| (*x).clone()).collect::<Vec<_>>()),
        _ => {
            let up = xs
                .iter()
                .map(|x| x.to_dtype(DType::F32))
                .collect::<Result<Vec<_>>>()?;
            f(&up)?.to_dtype(dtype)
        }
    }
}

/// A raw pointer that parallel tasks share to write disjoint parts of one output buffer.
#[derive(Clone, Copy)]
pub(crate) struct SharedMut<T>(*mut T);

// SAFETY: the pointer is only dereferenced by tasks that write disjoint elements, which
// each use site argues in its own SAFETY comment.
unsafe impl<T: Send> Send for SharedMut<T> {}
unsafe impl<T: Send> Sync for SharedMut<T> {}

impl<T> SharedMut<T> {
    pub(crate) fn new(data: &mut [T]) -> Self {
        Self(data.as_mut_ptr())
    }

    pub(crate) fn ptr(self) -> *mut T {
        self.0
    }

    /// A mutable view of `len` elements from `offset`.
    ///
    /// # Safety
    /// The range must lie inside the buffer and no other live view may overlap it.
    pub(crate) unsafe fn slice(self, offset: usize, len: usize) -> &'static mut [T] {
        std::slice::from_raw_parts_mut(self.0.add(offset), len)
    }
}

/// Splits `0..n` into at most `parts` contiguous ranges of near-equal length.
pub(crate) fn split_even(n: usize, parts: usize) -> Vec<std::ops::Range<usize>> {
    let parts = parts.clamp(1, n.max(1));
    (0..parts)
        .map(|i| (i * n / parts)..((i + 1) * n / parts))
        .filter(|r| !r.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_even_covers_everything_once() {
        for n in [0, 1, 5, 17, 64] {
            for parts in [1, 2, 3, 8, 100] {
                let ranges = split_even(n, parts);
                let mut next = 0;
                for r in &ranges {
                    assert_eq!(r.start, next);
                    next = r.end;
                }
                assert_eq!(next, n);
                assert!(ranges.len() <= parts.max(1));
            }
        }
    }
}
