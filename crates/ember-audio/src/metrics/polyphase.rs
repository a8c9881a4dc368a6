//! The resampler pystoi uses (`resample_oct`: Octave's Kaiser-windowed sinc filter applied
//! by scipy's `resample_poly`), so our STOI sees the same 10 kHz signal as pystoi's. rubato
//! would do a better resampling, but STOI's numbers depend on this filter.

/// `x` at `from` Hz resampled to `to` Hz: ceil(len * p / q) samples, p / q = to / from
/// reduced.
pub fn resample_octave(x: &[f64], from: u32, to: u32) -> Vec<f64> {
    let g = gcd(from, to);
    let (p, q) = ((to / g) as usize, (from / g) as usize);
    if p == q {
        return x.to_vec();
    }
    let h = octave_filter(p, q);
    let half = (h.len() - 1) / 2;
    // resample_poly scales the normalised filter by p and evaluates the zero-stuffed,
    // filtered signal at every q-th sample, centred on the filter.
    let n_out = (x.len() * p).div_ceil(q);
    (0..n_out)
        .map(|m| {
            let centre = m * q + half;
            // i runs over input samples with 0 <= centre - i p <= 2 half.
            let first = centre.saturating_sub(2 * half).div_ceil(p);
            let last = (centre / p).min(x.len().saturating_sub(1));
            (first..=last)
                .map(|i| x[i] * h[centre - i * p])
                .sum::<f64>()
                * p as f64
        })
        .collect()
}

/// Octave's anti-aliasing filter for p / q, normalised to unit sum.
fn octave_filter(p: usize, q: usize) -> Vec<f64> {
    let rejection_db = 60.0f64; // -20 * log10(1e-3)
    let stopband = 1.0 / (2.0 * p.max(q) as f64);
    let roll_off = stopband / 10.0;
    let half = ((rejection_db - 8.0) / (28.714 * roll_off)).ceil() as i64;
    let beta = 0.1102 * (rejection_db - 8.7);
    let len = 2 * half + 1;
    let mut h: Vec<f64> = (-half..=half)
        .enumerate()
        .map(|(n, t)| {
            let ideal = 2.0 * p as f64 * stopband * sinc(2.0 * stopband * t as f64);
            ideal * kaiser(n, len as usize, beta)
        })
        .collect();
    let sum: f64 = h.iter().sum();
    h.iter_mut().for_each(|v| *v /= sum);
    h
}

fn sinc(x: f64) -> f64 {
    if x == 0.0 {
        1.0
    } else {
        let px = std::f64::consts::PI * x;
        px.sin() / px
    }
}

/// numpy's `kaiser(len, beta)[n]`.
fn kaiser(n: usize, len: usize, beta: f64) -> f64 {
    let r = 2.0 * n as f64 / (len - 1) as f64 - 1.0;
    bessel_i0(beta * (1.0 - r * r).max(0.0).sqrt()) / bessel_i0(beta)
}

/// The modified Bessel function I0 by its power series (converges fast for beta ~ 5.7).
fn bessel_i0(x: f64) -> f64 {
    let (mut sum, mut term, mut k) = (1.0, 1.0, 1.0);
    while term > 1e-17 * sum {
        term *= (x / (2.0 * k)) * (x / (2.0 * k));
        sum += term;
        k += 1.0;
    }
    sum
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bessel_and_kaiser_match_known_values() {
        assert!((bessel_i0(1.0) - 1.266_065_877_752_008_4).abs() < 1e-14);
        assert!((kaiser(0, 5, 0.0) - 1.0).abs() < 1e-15);
        assert!((kaiser(2, 5, 5.0) - 1.0).abs() < 1e-15);
    }

    #[test]
    fn a_slow_tone_survives_16k_to_10k() {
        let x: Vec<f64> = (0..16_000)
            .map(|i| (std::f64::consts::TAU * 300.0 * i as f64 / 16_000.0).sin())
            .collect();
        let y = resample_octave(&x, 16_000, 10_000);
        assert_eq!(y.len(), 10_000);
        for (m, v) in y.iter().enumerate().skip(1000).take(8000) {
            let want = (std::f64::consts::TAU * 300.0 * m as f64 / 10_000.0).sin();
            assert!((v - want).abs() < 2e-3, "{m}: {v} vs {want}");
        }
    }
}
