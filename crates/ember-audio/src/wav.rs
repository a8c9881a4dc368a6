//! Writing WAV files (hound): to a path atomically, or to bytes for stdout.

use std::io::Cursor;
use std::path::Path;

use ember_core::{EmberError, Result};

/// The sample format of a written WAV file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WavFormat {
    /// 16-bit integer PCM, what every player and tool reads; samples are clipped to [-1, 1].
    Pcm16,
    /// 32-bit float, lossless for our f32 samples.
    Float32,
}

impl WavFormat {
    fn spec(self, sample_rate: u32) -> hound::WavSpec {
        let (bits_per_sample, sample_format) = match self {
            Self::Pcm16 => (16, hound::SampleFormat::Int),
            Self::Float32 => (32, hound::SampleFormat::Float),
        };
        hound::WavSpec {
            channels: 1,
            sample_rate,
            bits_per_sample,
            sample_format,
        }
    }
}

/// One channel of `samples` as the bytes of a WAV file.
pub fn wav_bytes(samples: &[f32], sample_rate: u32, format: WavFormat) -> Result<Vec<u8>> {
    let mut cursor = Cursor::new(Vec::with_capacity(44 + samples.len() * 4));
    let failed = |e: hound::Error| EmberError::Runtime(format!("writing WAV: {e}"));
    let mut writer =
        hound::WavWriter::new(&mut cursor, format.spec(sample_rate)).map_err(failed)?;
    match format {
        WavFormat::Pcm16 => {
            for &x in samples {
                // Round to nearest, the inverse of the decoder's x / 32768.
                let q = (x.clamp(-1.0, 1.0) * 32768.0)
                    .round()
                    .clamp(-32768.0, 32767.0);
                writer.write_sample(q as i16).map_err(failed)?;
            }
        }
        WavFormat::Float32 => {
            for &x in samples {
                writer.write_sample(x).map_err(failed)?;
            }
        }
    }
    writer.finalize().map_err(failed)?;
    Ok(cursor.into_inner())
}

/// Writes `samples` to `path` atomically (a killed run never leaves a torn file).
pub fn write_wav(path: &Path, samples: &[f32], sample_rate: u32, format: WavFormat) -> Result<()> {
    ember_core::atomic::write_atomic(path, &wav_bytes(samples, sample_rate, format)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pcm16_clips_instead_of_wrapping() {
        let bytes = wav_bytes(&[2.0, -2.0, 0.5], 16_000, WavFormat::Pcm16).unwrap();
        let mut reader = hound::WavReader::new(Cursor::new(bytes)).unwrap();
        let got: Vec<i16> = reader.samples::<i16>().map(|s| s.unwrap()).collect();
        assert_eq!(got, vec![32767, -32768, 16384]);
    }

    #[test]
    fn files_are_written_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.wav");
        write_wav(&path, &[0.25; 160], 16_000, WavFormat::Float32).unwrap();
        let reader = hound::WavReader::open(&path).unwrap();
        assert_eq!(reader.len(), 160);
        assert_eq!(reader.spec().sample_rate, 16_000);
    }
}
