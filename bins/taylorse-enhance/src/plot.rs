//! Spectrogram PNGs (log magnitude, one shared dB scale) of noisy, enhanced and clean audio.

use std::path::Path;

use ember_core::plot::{draw_heatmaps, Heatmap};
use ember_core::Result;

use crate::frontend::FrontEnd;

/// One panel per named signal, highest frequency at the top, 80 dB below the loudest bin
/// at the bottom of the colour scale.
pub fn spectrogram_png(path: &Path, front: &FrontEnd, signals: &[(&str, &[f32])]) -> Result<()> {
    let mut maps = Vec::with_capacity(signals.len());
    let mut top = f32::NEG_INFINITY;
    for (name, wave) in signals {
        let s = front.stft.forward(wave)?;
        let mag = s.magnitude();
        let (t, f) = (s.frames, s.bins);
        // Rows are frequencies (descending), columns frames.
        let mut values = vec![0.0f32; t * f];
        for frame in 0..t {
            for bin in 0..f {
                let db = 20.0 * (mag[frame * f + bin] + 1e-8).log10();
                top = top.max(db);
                values[(f - 1 - bin) * t + frame] = db;
            }
        }
        maps.push(Heatmap {
            title: format!("{name} (16 kHz, {:.1} s)", wave.len() as f64 / 16_000.0),
            width: t,
            height: f,
            values,
        });
    }
    draw_heatmaps(path, &maps, top - 80.0, top)
}
