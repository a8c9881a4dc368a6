//! The exact GELU, `x * Phi(x) = x/2 * (1 + erf(x / sqrt 2))` (PyTorch's `nn.GELU()`), with
//! its backward `dy * (Phi(x) + x phi(x))`.
//!
//! candle's `gelu_erf` calls libm's scalar `erff` per element and builds its backward from
//! five more ops (another erf, an exp, products): on LightViT's FFN it was the largest
//! element-wise cost of a training step. Here f32 uses Abramowitz & Stegun 7.1.26 for erf
//! (|error| < 1.5e-7, below f32's resolution of the result) over the vectorised exp, one
//! pass forward and one backward; f64 (gradient checks) uses libm's erf.

use std::mem::MaybeUninit;

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};
use multiversion::multiversion;

use crate::cpu::{float_kernel, in_kernel_precision, par_fill, Float};

/// Elements per parallel task.
const CHUNK: usize = 4096;

/// `gelu(x)` with the erf form, as `torch.nn.functional.gelu(x)`.
pub fn gelu(x: &Tensor) -> Result<Tensor> {
    if !x.device().is_cpu() {
        return composed::gelu(x);
    }
    in_kernel_precision(&[x], |t| t[0].contiguous()?.apply_op1(Gelu))
}

struct Gelu;
struct GeluGrad;

impl CustomOp1 for Gelu {
    fn name(&self) -> &'static str {
        "ember.gelu"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let out = float_kernel!(self.name(), x = (s, l) => map_chunks(x, None, T::gelu_chunk))?;
        Ok((out, l.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, _y: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(x.apply_op2_no_bwd(&grad.contiguous()?, &GeluGrad)?))
    }
}

impl CustomOp2 for GeluGrad {
    fn name(&self) -> &'static str {
        "ember.gelu_backward"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let out = float_kernel!(self.name(), x = (s1, l1), dy = (s2, l2) => map_chunks(x, Some(dy), T::gelu_grad_chunk))?;
        Ok((out, l1.shape().clone()))
    }
}

/// `out[i] = f(x[i], dy[i])` over matching chunks in parallel, `f` given whole chunks
/// (uninitialised; it writes every element).
fn map_chunks<T: Float>(
    x: &[T],
    dy: Option<&[T]>,
    f: fn(&mut [MaybeUninit<T>], &[T], &[T]),
) -> Vec<T> {
    // SAFETY: the kernels write every element of the chunk they are given.
    unsafe {
        par_fill(x.len(), CHUNK, |offset, out| {
            let range = offset..offset + out.len();
            let dy = dy.map_or(&[][..], |d| &d[range.clone()]);
            f(out, &x[range], dy)
        })
    }
}

const SQRT_HALF: f64 = std::f64::consts::FRAC_1_SQRT_2;
/// `1 / sqrt(2 pi)`.
const INV_SQRT_2PI: f64 = 0.398_942_280_401_432_7;

/// The per-type kernels (f32 approximates erf, f64 is exact); each writes every element
/// of `out`.
pub(crate) trait GeluKernel: Sized {
    /// `out[i] = gelu(x[i])`.
    fn gelu_chunk(out: &mut [MaybeUninit<Self>], x: &[Self], _: &[Self]);
    /// `out[i] = dy[i] * gelu'(x[i])`.
    fn gelu_grad_chunk(out: &mut [MaybeUninit<Self>], x: &[Self], dy: &[Self]);
}

/// `Phi(x)` for each element, given `e[i] = exp(-x[i]^2 / 2)` (A&S 7.1.26 on `|x| / sqrt 2`).
/// Inlined into the vectorised loops, so it is compiled for their target.
#[inline(always)]
fn phi_f32(x: f32, e: f32) -> f32 {
    const P: f32 = 0.327_591_1;
    const A: [f32; 5] = [
        0.254_829_6,
        -0.284_496_74,
        1.421_413_7,
        -1.453_152,
        1.061_405_4,
    ];
    let z = x.abs() * SQRT_HALF as f32;
    let t = 1.0 / (1.0 + P * z);
    let poly = t * (A[0] + t * (A[1] + t * (A[2] + t * (A[3] + t * A[4]))));
    let erf_abs = 1.0 - poly * e;
    0.5 * (1.0 + erf_abs.copysign(x))
}

/// Writes `exp(-x[i]^2 / 2)` into every element of `out` (vectorised) and returns it.
fn half_gauss_f32<'a>(out: &'a mut [MaybeUninit<f32>], x: &[f32]) -> &'a mut [f32] {
    for (e, &v) in out.iter_mut().zip(x) {
        e.write(-0.5 * v * v);
    }
    // SAFETY: every element was just written; `MaybeUninit<f32>` has `f32`'s layout.
    let e = unsafe { std::slice::from_raw_parts_mut(out.as_mut_ptr() as *mut f32, out.len()) };
    crate::simd::exp_f32_in_place(e);
    e
}

impl GeluKernel for f32 {
    fn gelu_chunk(out: &mut [MaybeUninit<f32>], x: &[f32], _: &[f32]) {
        gelu_from_gauss(half_gauss_f32(out, x), x);
    }

    fn gelu_grad_chunk(out: &mut [MaybeUninit<f32>], x: &[f32], dy: &[f32]) {
        gelu_grad_from_gauss(half_gauss_f32(out, x), x, dy);
    }
}

// The two loops below are compiled for the machine's vector width (as `crate::simd`'s are):
// with the baseline's SSE2 they were 6.5% of a LightViT training step. No `mul_add` is
// written, so every target rounds alike.

/// `e[i] = x[i] Phi(x[i])`, given `e[i] = exp(-x[i]^2 / 2)`.
#[multiversion(targets("x86_64+avx512f+avx512vl+avx2+fma", "x86_64+avx2+fma", "aarch64+neon"))]
fn gelu_from_gauss(e: &mut [f32], x: &[f32]) {
    for (o, &v) in e.iter_mut().zip(x) {
        *o = v * phi_f32(v, *o);
    }
}

/// `e[i] = dy[i] (Phi(x[i]) + x[i] phi(x[i]))`, given `e[i] = exp(-x[i]^2 / 2)`.
#[multiversion(targets("x86_64+avx512f+avx512vl+avx2+fma", "x86_64+avx2+fma", "aarch64+neon"))]
fn gelu_grad_from_gauss(e: &mut [f32], x: &[f32], dy: &[f32]) {
    for ((o, &v), &g) in e.iter_mut().zip(x).zip(dy) {
        let e = *o;
        *o = g * (phi_f32(v, e) + v * e * INV_SQRT_2PI as f32);
    }
}

impl GeluKernel for f64 {
    fn gelu_chunk(out: &mut [MaybeUninit<f64>], x: &[f64], _: &[f64]) {
        for (o, &v) in out.iter_mut().zip(x) {
            o.write(v * 0.5 * (1.0 + libm_erf(v * SQRT_HALF)));
        }
    }

    fn gelu_grad_chunk(out: &mut [MaybeUninit<f64>], x: &[f64], dy: &[f64]) {
        for ((o, &v), &g) in out.iter_mut().zip(x).zip(dy) {
            let phi = 0.5 * (1.0 + libm_erf(v * SQRT_HALF));
            o.write(g * (phi + v * (-0.5 * v * v).exp() * INV_SQRT_2PI));
        }
    }
}

fn libm_erf(x: f64) -> f64 {
    candle_core::cpu::erf::erf_f64(x)
}

/// GELU from candle ops with working gradients (the CUDA/Metal path and the reference).
pub mod composed {
    use super::*;

    pub fn gelu(x: &Tensor) -> Result<Tensor> {
        x.gelu_erf()
    }
}
