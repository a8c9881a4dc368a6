//! Ember's audio: decoding (WAV, FLAC, Ogg Vorbis, MP3 through symphonia) to mono f32,
//! resampling (rubato), WAV writing (hound), the STFT/iSTFT exactly as `torch.stft` /
//! `torch.istft` compute them with the power-law compression of TaylorSENet's front end,
//! noisy mixtures at a given SNR, and the metrics SI-SDR and STOI/ESTOI.
//!
//! Signals are plain `Vec<f32>` / `&[f32]` here: nothing in this crate needs gradients (the
//! model takes and returns spectra), so it stays free of candle.

pub mod decode;
pub mod metrics;
pub mod mix;
pub mod resample;
pub mod spectrum;
pub mod stft;
pub mod wav;

pub use decode::{decode_bytes, decode_file, Audio};
pub use metrics::{estoi, si_sdr, stoi};
pub use mix::{mix_at_snr, unit_rms_factor};
pub use resample::resample;
pub use spectrum::Spectrum;
pub use stft::Stft;
pub use wav::{wav_bytes, write_wav, WavFormat};

/// The sample rate every Ember speech model works at.
pub const SAMPLE_RATE: u32 = 16_000;
