//! Noisy mixtures and the front end's level normalisation.

use ember_core::{EmberError, Result};

fn energy(x: &[f32]) -> f64 {
    x.iter().map(|&v| v as f64 * v as f64).sum()
}

/// clean + g * noise with g chosen so that 10 log10(P_clean / P_noisy part) = `snr_db`
/// (powers as mean squares over the clip). `noise` must be at least as long as `clean`; only
/// its first `clean.len()` samples are used.
pub fn mix_at_snr(clean: &[f32], noise: &[f32], snr_db: f32) -> Result<Vec<f32>> {
    if noise.len() < clean.len() {
        return Err(EmberError::bad_input(format!(
            "noise of {} samples is shorter than the speech ({} samples)",
            noise.len(),
            clean.len()
        )));
    }
    let noise = &noise[..clean.len()];
    let (pc, pn) = (energy(clean), energy(noise));
    if pn == 0.0 {
        return Err(EmberError::bad_input(
            "the noise is silent: no SNR can be set",
        ));
    }
    let gain = (pc / (pn * 10f64.powf(snr_db as f64 / 10.0))).sqrt() as f32;
    Ok(clean.iter().zip(noise).map(|(s, n)| s + gain * n).collect())
}

/// The official level normalisation: c = sqrt(L / sum x^2) makes the mixture unit-RMS; the
/// same c scales its clean target (and divides the enhanced output back). A silent input
/// keeps its level (c = 1).
pub fn unit_rms_factor(mixture: &[f32]) -> f32 {
    let e = energy(mixture);
    if e > 0.0 {
        (mixture.len() as f64 / e).sqrt() as f32
    } else {
        1.0
    }
}

/// `source` repeated to `len` samples from `offset` (noise clips shorter than the speech are
/// looped, as mixing scripts usually do).
pub fn looped(source: &[f32], offset: usize, len: usize) -> Vec<f32> {
    if source.is_empty() {
        return vec![0.0; len];
    }
    (0..len)
        .map(|i| source[(offset + i) % source.len()])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mixture_has_the_requested_snr() {
        let clean: Vec<f32> = (0..1000).map(|i| (i as f32 * 0.1).sin()).collect();
        let noise: Vec<f32> = (0..1200)
            .map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0)
            .collect();
        for snr in [-5.0, 0.0, 7.5] {
            let mix = mix_at_snr(&clean, &noise, snr).unwrap();
            let residual: Vec<f32> = mix.iter().zip(&clean).map(|(m, c)| m - c).collect();
            let got = 10.0 * (energy(&clean) / energy(&residual)).log10();
            assert!((got - snr as f64).abs() < 1e-4, "{got} vs {snr}");
        }
        assert_eq!(
            mix_at_snr(&clean, &noise[..10], 0.0)
                .unwrap_err()
                .exit_code(),
            2
        );
        assert!(mix_at_snr(&clean, &[0.0; 1000], 0.0).is_err());
    }

    #[test]
    fn unit_rms_and_looping() {
        let x = [0.5f32, -0.5, 0.5, -0.5];
        assert!((unit_rms_factor(&x) - 2.0).abs() < 1e-6);
        assert_eq!(unit_rms_factor(&[0.0; 3]), 1.0);
        assert_eq!(
            looped(&[1.0, 2.0, 3.0], 2, 5),
            vec![3.0, 1.0, 2.0, 3.0, 1.0]
        );
    }
}
