//! The short-time Fourier transform and its inverse with `torch.stft` / `torch.istft`'s
//! conventions (center = True, reflect padding, one-sided, unnormalised, periodic Hann,
//! overlap-add divided by the summed squared window), so spectra match the official
//! PyTorch front ends. Computed in f64 and stored in f32.

use std::sync::Arc;

use ember_core::{EmberError, Result};
use realfft::{ComplexToReal, RealFftPlanner, RealToComplex};

use crate::spectrum::Spectrum;

/// An STFT configuration with its planned FFTs.
#[derive(Clone)]
pub struct Stft {
    n_fft: usize,
    hop: usize,
    /// The analysis/synthesis window, zero-padded to `n_fft` centred (as torch pads it).
    window: Vec<f64>,
    forward: Arc<dyn RealToComplex<f64>>,
    inverse: Arc<dyn ComplexToReal<f64>>,
}

impl std::fmt::Debug for Stft {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Stft(n_fft {}, hop {})", self.n_fft, self.hop)
    }
}

/// `torch.hann_window(n)`: the periodic Hann window.
pub fn periodic_hann(n: usize) -> Vec<f64> {
    (0..n)
        .map(|i| 0.5 - 0.5 * (std::f64::consts::TAU * i as f64 / n as f64).cos())
        .collect()
}

impl Stft {
    /// A periodic Hann window of `win_length` samples (<= `n_fft`), hop `hop`.
    pub fn new(n_fft: usize, hop: usize, win_length: usize) -> Result<Self> {
        if n_fft < 2 || hop == 0 || win_length == 0 || win_length > n_fft {
            return Err(EmberError::bad_input(format!(
                "STFT needs n_fft >= 2, hop >= 1 and 1 <= win_length <= n_fft (got {n_fft}, {hop}, {win_length})"
            )));
        }
        let mut window = vec![0.0; n_fft];
        let left = (n_fft - win_length) / 2;
        window[left..left + win_length].copy_from_slice(&periodic_hann(win_length));
        let mut planner = RealFftPlanner::<f64>::new();
        Ok(Self {
            n_fft,
            hop,
            window,
            forward: planner.plan_fft_forward(n_fft),
            inverse: planner.plan_fft_inverse(n_fft),
        })
    }

    pub fn n_fft(&self) -> usize {
        self.n_fft
    }

    pub fn hop(&self) -> usize {
        self.hop
    }

    pub fn bins(&self) -> usize {
        self.n_fft / 2 + 1
    }

    /// Frames of a signal of `len` samples: len / hop + 1 (center padding).
    pub fn frames(&self, len: usize) -> usize {
        len / self.hop + 1
    }

    /// The spectrum of `signal`, (2, T, F).
    pub fn forward(&self, signal: &[f32]) -> Result<Spectrum> {
        let pad = self.n_fft / 2;
        if signal.len() <= pad {
            return Err(EmberError::bad_input(format!(
                "audio of {} samples is too short for an STFT of {} points (needs more than {pad})",
                signal.len(),
                self.n_fft
            )));
        }
        let padded = reflect_pad(signal, pad);
        let (frames, bins) = (self.frames(signal.len()), self.bins());
        let mut out = Spectrum::zeros(frames, bins);
        let mut input = self.forward.make_input_vec();
        let mut output = self.forward.make_output_vec();
        let (re, im) = out.parts_mut();
        for t in 0..frames {
            let start = t * self.hop;
            for (k, v) in input.iter_mut().enumerate() {
                *v = padded[start + k] * self.window[k];
            }
            self.forward
                .process(&mut input, &mut output)
                .map_err(fft_failed)?;
            for (f, c) in output.iter().enumerate() {
                re[t * bins + f] = c.re as f32;
                im[t * bins + f] = c.im as f32;
            }
        }
        Ok(out)
    }

    /// The signal of `spectrum` cut (or zero-extended) to `length` samples, as
    /// `torch.istft(..., center=True, length=length)`. The imaginary parts of the DC and
    /// Nyquist bins are ignored, as irfft ignores them.
    pub fn inverse(&self, spectrum: &Spectrum, length: usize) -> Result<Vec<f32>> {
        if spectrum.bins != self.bins() {
            return Err(EmberError::bad_input(format!(
                "a spectrum of {} bins does not invert with n_fft {} ({} bins)",
                spectrum.bins,
                self.n_fft,
                self.bins()
            )));
        }
        let frames = spectrum.frames;
        let total = self.n_fft + self.hop * frames.saturating_sub(1);
        let mut signal = vec![0.0f64; total];
        let mut envelope = vec![0.0f64; total];
        let mut input = self.inverse.make_input_vec();
        let mut output = self.inverse.make_output_vec();
        let bins = self.bins();
        let (re, im) = (spectrum.re(), spectrum.im());
        let scale = 1.0 / self.n_fft as f64;
        for t in 0..frames {
            for (f, c) in input.iter_mut().enumerate() {
                c.re = re[t * bins + f] as f64;
                c.im = im[t * bins + f] as f64;
            }
            input[0].im = 0.0;
            if self.n_fft.is_multiple_of(2) {
                input[bins - 1].im = 0.0;
            }
            self.inverse
                .process(&mut input, &mut output)
                .map_err(fft_failed)?;
            let start = t * self.hop;
            for (k, (&y, &w)) in output.iter().zip(&self.window).enumerate() {
                signal[start + k] += y * scale * w;
                envelope[start + k] += w * w;
            }
        }
        let start = self.n_fft / 2;
        let mut out = vec![0.0f32; length];
        for (i, o) in out.iter_mut().enumerate() {
            let Some(&env) = envelope.get(start + i) else {
                break;
            };
            if env < 1e-11 {
                return Err(EmberError::bad_input(format!(
                    "iSTFT: the window overlap-add vanishes at sample {i} (hop {} too large for the window)",
                    self.hop
                )));
            }
            *o = (signal[start + i] / env) as f32;
        }
        Ok(out)
    }
}

/// `x` extended by `pad` mirrored samples each side (the edge sample itself not repeated).
fn reflect_pad(x: &[f32], pad: usize) -> Vec<f64> {
    let n = x.len() as isize;
    (-(pad as isize)..n + pad as isize)
        .map(|j| {
            let i = if j < 0 {
                -j
            } else if j >= n {
                2 * (n - 1) - j
            } else {
                j
            };
            x[i as usize] as f64
        })
        .collect()
}

fn fft_failed(e: realfft::FftError) -> EmberError {
    EmberError::Runtime(format!("FFT: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reflect_padding_mirrors_without_the_edge() {
        let p = reflect_pad(&[1.0, 2.0, 3.0, 4.0], 2);
        assert_eq!(p, vec![3.0, 2.0, 1.0, 2.0, 3.0, 4.0, 3.0, 2.0]);
    }

    #[test]
    fn a_cosine_on_a_bin_gives_one_peak() {
        let stft = Stft::new(64, 16, 64).unwrap();
        let x: Vec<f32> = (0..640)
            .map(|i| (std::f32::consts::TAU * 8.0 * i as f32 / 64.0).cos())
            .collect();
        let s = stft.forward(&x).unwrap();
        assert_eq!((s.frames, s.bins), (41, 33));
        // A periodic-Hann-windowed cosine on bin 8: 64 * 0.5 / 2 = 16 at bin 8, -8 at 7 and 9.
        let row = &s.re()[20 * 33..21 * 33];
        assert!((row[8] - 16.0).abs() < 1e-4 && (row[7] + 8.0).abs() < 1e-4 && row[0].abs() < 1e-4);
    }

    #[test]
    fn the_inverse_reconstructs_the_signal() {
        let stft = Stft::new(320, 160, 320).unwrap();
        let x: Vec<f32> = (0..4321)
            .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
            .collect();
        let y = stft.inverse(&stft.forward(&x).unwrap(), x.len()).unwrap();
        let worst = x
            .iter()
            .zip(&y)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(worst < 1e-5, "{worst}");
        // Longer than the frames cover: zero beyond, as torch pads.
        let long = stft
            .inverse(&stft.forward(&x).unwrap(), x.len() + 500)
            .unwrap();
        assert!(long[x.len() + 200..].iter().all(|&v| v == 0.0));
    }

    #[test]
    fn short_signals_and_bad_sizes_are_refused() {
        let stft = Stft::new(320, 160, 320).unwrap();
        assert_eq!(stft.forward(&[0.0; 160]).unwrap_err().exit_code(), 2);
        assert!(Stft::new(320, 160, 400).is_err());
    }
}
