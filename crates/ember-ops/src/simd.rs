//! The small vector loops the kernels spend their time in, compiled for AVX-512, AVX2+FMA
//! and NEON and picked at run time (`multiversion`), so the binary stays portable while the
//! loops use the machine's full vector width. Reductions keep 16 independent partial sums,
//! which lets the compiler vectorise them without reassociating a single sum.

use multiversion::multiversion;

use crate::cpu::Float;

const LANES: usize = 16;

/// `y += a * x`
#[multiversion(targets("x86_64+avx512f+avx512vl+avx2+fma", "x86_64+avx2+fma", "aarch64+neon"))]
pub(crate) fn axpy<T: Float>(y: &mut [T], a: T, x: &[T]) {
    debug_assert_eq!(y.len(), x.len());
    for (y, &x) in y.iter_mut().zip(x) {
        *y += a * x;
    }
}

/// `y += x`
#[multiversion(targets("x86_64+avx512f+avx512vl+avx2+fma", "x86_64+avx2+fma", "aarch64+neon"))]
pub(crate) fn add_assign<T: Float>(y: &mut [T], x: &[T]) {
    debug_assert_eq!(y.len(), x.len());
    for (y, &x) in y.iter_mut().zip(x) {
        *y += x;
    }
}

/// `sum(a * b)`
#[multiversion(targets("x86_64+avx512f+avx512vl+avx2+fma", "x86_64+avx2+fma", "aarch64+neon"))]
pub(crate) fn dot<T: Float>(a: &[T], b: &[T]) -> T {
    debug_assert_eq!(a.len(), b.len());
    let mut acc = [T::zero(); LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: T = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .fold(T::zero(), |s, (&x, &y)| s + x * y);
    for (x, y) in ca.zip(cb) {
        for i in 0..LANES {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().fold(tail, |s, &v| s + v)
}

/// `sum(a)`
#[multiversion(targets("x86_64+avx512f+avx512vl+avx2+fma", "x86_64+avx2+fma", "aarch64+neon"))]
pub(crate) fn sum<T: Float>(a: &[T]) -> T {
    let mut acc = [T::zero(); LANES];
    let chunks = a.chunks_exact(LANES);
    let tail = chunks.remainder().iter().fold(T::zero(), |s, &x| s + x);
    for x in chunks {
        for i in 0..LANES {
            acc[i] += x[i];
        }
    }
    acc.iter().fold(tail, |s, &v| s + v)
}

/// `sum((a - m)^2)`
#[multiversion(targets("x86_64+avx512f+avx512vl+avx2+fma", "x86_64+avx2+fma", "aarch64+neon"))]
pub(crate) fn sum_sq_dev<T: Float>(a: &[T], m: T) -> T {
    let mut acc = [T::zero(); LANES];
    let chunks = a.chunks_exact(LANES);
    let tail = chunks
        .remainder()
        .iter()
        .fold(T::zero(), |s, &x| s + (x - m) * (x - m));
    for x in chunks {
        for i in 0..LANES {
            let d = x[i] - m;
            acc[i] += d * d;
        }
    }
    acc.iter().fold(tail, |s, &v| s + v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loops_match_scalar_arithmetic_at_every_length() {
        for n in [0usize, 1, 15, 16, 17, 40, 100] {
            let a: Vec<f64> = (0..n).map(|i| i as f64 * 0.5 - 3.0).collect();
            let b: Vec<f64> = (0..n).map(|i| (i as f64).sin()).collect();
            let want_dot: f64 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            assert!((dot(&a, &b) - want_dot).abs() < 1e-12);
            assert!((sum(&a) - a.iter().sum::<f64>()).abs() < 1e-12);
            let m = 0.25;
            let want_sq: f64 = a.iter().map(|x| (x - m) * (x - m)).sum();
            assert!((sum_sq_dev(&a, m) - want_sq).abs() < 1e-9);
            let mut y = b.clone();
            axpy(&mut y, 2.0, &a);
            let mut z = b.clone();
            add_assign(&mut z, &a);
            for i in 0..n {
                assert_eq!(y[i], b[i] + 2.0 * a[i]);
                assert_eq!(z[i], b[i] + a[i]);
            }
        }
    }
}
