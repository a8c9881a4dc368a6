//! Scale-invariant signal-to-distortion ratio (Le Roux et al., 2019), in dB.

/// SI-SDR of `estimate` against `reference` (same length; both made zero-mean first, as the
/// common implementations do): the estimate is split into its projection on the reference
/// and the rest, and their energies are compared.
pub fn si_sdr(reference: &[f32], estimate: &[f32]) -> f64 {
    assert_eq!(
        reference.len(),
        estimate.len(),
        "SI-SDR needs signals of one length"
    );
    let centred = |x: &[f32]| {
        let mean = x.iter().map(|&v| v as f64).sum::<f64>() / x.len().max(1) as f64;
        x.iter().map(|&v| v as f64 - mean).collect::<Vec<_>>()
    };
    let (s, e) = (centred(reference), centred(estimate));
    let dot: f64 = s.iter().zip(&e).map(|(a, b)| a * b).sum();
    let ss: f64 = s.iter().map(|a| a * a).sum();
    let alpha = dot / (ss + f64::EPSILON);
    let (mut target, mut noise) = (0.0, 0.0);
    for (a, b) in s.iter().zip(&e) {
        let t = alpha * a;
        target += t * t;
        noise += (b - t) * (b - t);
    }
    10.0 * ((target + f64::EPSILON) / (noise + f64::EPSILON)).log10()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_does_not_matter_and_noise_does() {
        let s: Vec<f32> = (0..800).map(|i| (i as f32 * 0.05).sin()).collect();
        let n: Vec<f32> = (0..800)
            .map(|i| ((i * 53 % 97) as f32 / 48.5) - 1.0)
            .collect();
        let noisy: Vec<f32> = s.iter().zip(&n).map(|(a, b)| a + 0.1 * b).collect();
        let louder: Vec<f32> = noisy.iter().map(|v| 3.0 * v).collect();
        let a = si_sdr(&s, &noisy);
        assert!((a - si_sdr(&s, &louder)).abs() < 1e-5);
        // Orthogonal-ish noise at 0.1 amplitude: about 20 dB below a sine of RMS 0.71.
        assert!(a > 10.0 && a < 30.0, "{a}");
        assert!(si_sdr(&s, &s) > 100.0);
    }
}
