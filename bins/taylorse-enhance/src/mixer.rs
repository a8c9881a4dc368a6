//! On-the-fly noisy mixtures: a random chunk of a random utterance, a random stretch of a
//! random noise (looped when short) at a random SNR, scaled to unit RMS as the official
//! dataset does. Each mixture is a function of (seed, index), so a resumed run draws the
//! same data and a test set is fixed by its seed.

use ember_audio::mix::{looped, mix_at_snr, unit_rms_factor};
use ember_core::{EmberRng, Result};

use crate::corpus::Clips;

/// One training or test example at 16 kHz.
#[derive(Debug, Clone)]
pub struct Mixture {
    pub noisy: Vec<f32>,
    pub clean: Vec<f32>,
    /// Samples of speech before any zero padding (the loss masks the rest).
    pub length: usize,
    pub clean_name: String,
    pub noise_name: String,
}

/// How mixtures are drawn.
#[derive(Debug, Clone)]
pub struct MixSpec {
    /// Chunk length in samples; shorter utterances are zero-padded (None: whole utterances).
    pub chunk: Option<usize>,
    pub snr_min: f32,
    pub snr_max: f32,
}

/// Mixture `index` of the stream seeded by `seed` (the SNR drawn from the spec's range, or
/// `snr` when given).
pub fn draw(
    clean: &Clips,
    noise: &Clips,
    spec: &MixSpec,
    seed: u64,
    index: u64,
    snr: Option<f32>,
) -> Result<Mixture> {
    let mut rng = EmberRng::for_name(seed, &format!("mixture-{index}"));
    let c = rng.below(clean.len());
    let speech = &clean.samples[c];
    let (start, length, total) = match spec.chunk {
        Some(chunk) if speech.len() > chunk => (rng.below(speech.len() - chunk + 1), chunk, chunk),
        Some(chunk) => (0, speech.len(), chunk),
        None => (0, speech.len(), speech.len()),
    };
    let mut clean_part = speech[start..start + length].to_vec();
    // A stretch of silence in a noise clip cannot be set to an SNR: draw again (a few times).
    let (mut n, mut noise_part) = (0, Vec::new());
    for _ in 0..16 {
        n = rng.below(noise.len());
        let source = &noise.samples[n];
        noise_part = looped(source, rng.below(source.len().max(1)), length);
        if noise_part.iter().any(|&v| v != 0.0) {
            break;
        }
    }
    let snr_db =
        snr.unwrap_or_else(|| rng.uniform(spec.snr_min as f64, spec.snr_max as f64) as f32);
    let mut noisy = mix_at_snr(&clean_part, &noise_part, snr_db)?;
    let c_scale = unit_rms_factor(&noisy);
    for (x, s) in noisy.iter_mut().zip(clean_part.iter_mut()) {
        *x *= c_scale;
        *s *= c_scale;
    }
    noisy.resize(total, 0.0);
    clean_part.resize(total, 0.0);
    Ok(Mixture {
        noisy,
        clean: clean_part,
        length,
        clean_name: clean.names[c].clone(),
        noise_name: noise.names[n].clone(),
    })
}
