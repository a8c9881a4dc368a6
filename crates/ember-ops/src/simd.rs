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
pub(crate) fn dot<T: Float>(a: &[T], b: &[T]) -> T {
    dot_centred(a, T::zero(), b)
}

/// `max(a)` (NaN-propagation aside: for finite inputs), `-inf` for an empty slice.
#[multiversion(targets("x86_64+avx512f+avx512vl+avx2+fma", "x86_64+avx2+fma", "aarch64+neon"))]
pub(crate) fn max<T: Float>(a: &[T]) -> T {
    let mut acc = [T::neg_infinity(); LANES];
    let chunks = a.chunks_exact(LANES);
    let tail = chunks
        .remainder()
        .iter()
        .fold(T::neg_infinity(), |m, &x| if x > m { x } else { m });
    for x in chunks {
        for i in 0..LANES {
            acc[i] = if x[i] > acc[i] { x[i] } else { acc[i] };
        }
    }
    acc.iter().fold(tail, |m, &x| if x > m { x } else { m })
}

/// `a[i] = (a[i] - shift) * scale`
#[multiversion(targets("x86_64+avx512f+avx512vl+avx2+fma", "x86_64+avx2+fma", "aarch64+neon"))]
pub(crate) fn shift_scale<T: Float>(a: &mut [T], shift: T, scale: T) {
    for x in a.iter_mut() {
        *x = (*x - shift) * scale;
    }
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

/// `sum((a - m) * b)`
#[multiversion(targets("x86_64+avx512f+avx512vl+avx2+fma", "x86_64+avx2+fma", "aarch64+neon"))]
pub(crate) fn dot_centred<T: Float>(a: &[T], m: T, b: &[T]) -> T {
    debug_assert_eq!(a.len(), b.len());
    let mut acc = [T::zero(); LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: T = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .fold(T::zero(), |s, (&x, &y)| s + (x - m) * y);
    for (x, y) in ca.zip(cb) {
        for i in 0..LANES {
            acc[i] += (x[i] - m) * y[i];
        }
    }
    acc.iter().fold(tail, |s, &v| s + v)
}

/// `dst[i] = a * x[i] + b * y[i] + c`
#[multiversion(targets("x86_64+avx512f+avx512vl+avx2+fma", "x86_64+avx2+fma", "aarch64+neon"))]
pub(crate) fn affine2_into<T: Float>(dst: &mut [T], a: T, x: &[T], b: T, y: &[T], c: T) {
    debug_assert!(dst.len() == x.len() && x.len() == y.len());
    for ((d, &x), &y) in dst.iter_mut().zip(x).zip(y) {
        *d = a * x + b * y + c;
    }
}

/// `dst[i] = a * x[i] + c`
#[multiversion(targets("x86_64+avx512f+avx512vl+avx2+fma", "x86_64+avx2+fma", "aarch64+neon"))]
pub(crate) fn affine_into<T: Float>(dst: &mut [T], a: T, x: &[T], c: T) {
    debug_assert_eq!(dst.len(), x.len());
    for (d, &x) in dst.iter_mut().zip(x) {
        *d = a * x + c;
    }
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

/// `v[i] = exp(v[i])` for f32, vectorised: `exp(x) = 2^n p(r)` with `n = round(x / ln 2)`,
/// `r = x - n ln 2` (ln 2 split in two for precision) and Cephes' degree-7 polynomial for
/// `p` (`expf` in Cephes: about 1 ulp). libm's `expf` is a scalar call per element, which made
/// softmax slower than candle's. Below -87.3 the result is 0 (as `expf` rounds it), above 88.7
/// it is infinite; NaN stays NaN.
#[multiversion(targets("x86_64+avx512f+avx512vl+avx2+fma", "x86_64+avx2+fma", "aarch64+neon"))]
pub(crate) fn exp_f32_in_place(v: &mut [f32]) {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    const P: [f32; 6] = [
        1.987_569_1e-4,
        1.398_199_9e-3,
        8.333_452e-3,
        4.166_579_6e-2,
        1.666_666_5e-1,
        0.5,
    ];
    for x in v.iter_mut() {
        let xv = *x;
        // NaN is replaced before the float-to-int conversion and put back at the end.
        let c = if xv.is_nan() {
            0.0
        } else {
            xv.clamp(-87.3, 88.7)
        };
        let n = (c * LOG2E + 0.5).floor();
        let r = c - n * LN2_HI - n * LN2_LO;
        let mut p = P[0];
        for &coef in &P[1..] {
            p = p * r + coef;
        }
        let p = p * r * r + r + 1.0;
        // 2^n in two factors, so that n = 128 (x near 88.7) does not overflow the exponent.
        let half = (n * 0.5).floor();
        // SAFETY: `half` and `n - half` are whole numbers in [-64, 64] (c is clamped and not
        // NaN), so the conversion is exact; the checked `as` cast would not vectorise.
        let pow2 =
            |e: f32| f32::from_bits(((unsafe { e.to_int_unchecked::<i32>() } + 127) as u32) << 23);
        let y = p * pow2(half) * pow2(n - half);
        let y = if xv < -87.3 { 0.0 } else { y };
        let y = if xv > 88.7 { f32::INFINITY } else { y };
        *x = if xv.is_nan() { xv } else { y };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_exp_is_within_two_ulp_of_libm() {
        let mut xs: Vec<f32> = (0..200_001)
            .map(|i| -87.0 + 175.0 * i as f32 / 200_000.0)
            .collect();
        xs.extend([0.0, -0.0, 1e-30, -1e-30, 88.5]);
        let mut ys = xs.clone();
        exp_f32_in_place(&mut ys);
        for (&x, &y) in xs.iter().zip(&ys) {
            let want = (x as f64).exp();
            assert!(
                ((y as f64 - want) / want).abs() < 2.5e-7,
                "exp({x}) = {y}, want {want}"
            );
        }
        let mut edge = [f32::NEG_INFINITY, -200.0, 200.0, f32::INFINITY, f32::NAN];
        exp_f32_in_place(&mut edge);
        assert_eq!(&edge[..4], &[0.0, 0.0, f32::INFINITY, f32::INFINITY]);
        assert!(edge[4].is_nan());
    }

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
