//! Sample-rate conversion with rubato's synchronous FFT resampler (band-limited, fixed ratio:
//! file rates are fixed, so the asynchronous sinc resamplers would only cost time).

use ember_core::{EmberError, Result};
use rubato::audioadapter_buffers::direct::SequentialSlice;
use rubato::{Fft, FixedSync, Resampler};

/// `samples` at `from` Hz resampled to `to` Hz; the output holds ceil(len * to / from)
/// samples, aligned with the input (rubato trims its filter delay).
pub fn resample(samples: &[f32], from: u32, to: u32) -> Result<Vec<f32>> {
    if from == 0 || to == 0 {
        return Err(EmberError::bad_input(format!(
            "cannot resample from {from} Hz to {to} Hz"
        )));
    }
    if from == to || samples.is_empty() {
        return Ok(samples.to_vec());
    }
    let failed = |e: &dyn std::fmt::Display| {
        EmberError::Runtime(format!("resampling {from} -> {to} Hz: {e}"))
    };
    let mut resampler = Fft::<f32>::new(from as usize, to as usize, 1024, 1, FixedSync::Input)
        .map_err(|e| failed(&e))?;
    let input = SequentialSlice::new(samples, 1, samples.len()).map_err(|e| failed(&e))?;
    let output = resampler
        .process_all(&input, samples.len(), None)
        .map_err(|e| failed(&e))?;
    Ok(output.take_data())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(freq: f32, rate: u32, seconds: f32) -> Vec<f32> {
        let n = (rate as f32 * seconds) as usize;
        (0..n)
            .map(|i| (std::f32::consts::TAU * freq * i as f32 / rate as f32).sin())
            .collect()
    }

    #[test]
    fn a_tone_keeps_its_frequency_and_phase() {
        let x = tone(440.0, 44_100, 0.5);
        let y = resample(&x, 44_100, 16_000).unwrap();
        assert_eq!(y.len(), 8000);
        let want = tone(440.0, 16_000, 0.5);
        // Away from the edges (the filter sees zeros beyond them) the tone is reproduced up
        // to rubato's fractional delay (measured 0.18 samples: 0.03 at 440 Hz; a whole sample
        // would be 0.17).
        let worst = y[400..7600]
            .iter()
            .zip(&want[400..7600])
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(worst < 0.05, "{worst}");
        let peak = y[400..7600].iter().fold(0.0f32, |a, b| a.max(b.abs()));
        assert!((peak - 1.0).abs() < 1e-3, "{peak}");
    }

    #[test]
    fn content_above_the_new_nyquist_is_removed() {
        let x = tone(7000.0, 22_050, 0.5);
        let y = resample(&x, 22_050, 8_000).unwrap();
        let rms = (y[400..3600].iter().map(|v| v * v).sum::<f32>() / 3200.0).sqrt();
        assert!(rms < 1e-2, "{rms}");
    }

    #[test]
    fn same_rate_is_a_copy_and_zero_is_refused() {
        assert_eq!(
            resample(&[0.5, 0.25], 16_000, 16_000).unwrap(),
            vec![0.5, 0.25]
        );
        assert_eq!(resample(&[0.5], 0, 16_000).unwrap_err().exit_code(), 2);
    }
}
