//! Decoding audio files to one channel of f32 samples through symphonia.

use std::io::Cursor;
use std::path::Path;

use ember_core::{EmberError, Result};
use symphonia::core::codecs::audio::AudioDecoderOptions;
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, TrackType};
use symphonia::core::io::{MediaSource, MediaSourceStream};
use symphonia::core::meta::MetadataOptions;

/// Mono audio: samples in [-1, 1] (for integer sources) at `sample_rate` Hz.
#[derive(Debug, Clone, PartialEq)]
pub struct Audio {
    pub samples: Vec<f32>,
    pub sample_rate: u32,
}

/// The formats a build of Ember decodes, for error messages.
pub const FORMATS: &str = "WAV, FLAC, Ogg Vorbis or MP3";

/// Decodes a file; its extension is only a hint, the content decides.
pub fn decode_file(path: &Path) -> Result<Audio> {
    let file = std::fs::File::open(path).map_err(|e| EmberError::io(path, e))?;
    let hint = path.extension().and_then(|e| e.to_str());
    decode(Box::new(file), hint)
        .map_err(|e| EmberError::bad_input(format!("{}: {e}", path.display())))
}

/// Decodes an in-memory file (e.g. WAV read from stdin); `what` names it in errors.
pub fn decode_bytes(bytes: Vec<u8>, what: &str) -> Result<Audio> {
    decode(Box::new(Cursor::new(bytes)), None)
        .map_err(|e| EmberError::bad_input(format!("{what}: {e}")))
}

fn decode(
    source: Box<dyn MediaSource>,
    extension: Option<&str>,
) -> std::result::Result<Audio, String> {
    let stream = MediaSourceStream::new(source, Default::default());
    let mut hint = Hint::new();
    if let Some(ext) = extension {
        hint.with_extension(ext);
    }
    let mut format = symphonia::default::get_probe()
        .probe(
            &hint,
            stream,
            FormatOptions::default(),
            MetadataOptions::default(),
        )
        .map_err(|e| format!("not a {FORMATS} file ({e})"))?;
    let track = format
        .default_track(TrackType::Audio)
        .ok_or_else(|| "no audio track".to_string())?;
    let params = track
        .codec_params
        .as_ref()
        .and_then(|p| p.audio())
        .ok_or_else(|| "no audio codec parameters".to_string())?;
    let mut decoder = symphonia::default::get_codecs()
        .make_audio_decoder(params, &AudioDecoderOptions::default())
        .map_err(|e| format!("cannot decode this codec: {e} (Ember reads {FORMATS})"))?;
    let track_id = track.id;
    let declared_rate = params.sample_rate;
    let mut samples = Vec::new();
    let mut sample_rate = None;
    let mut interleaved: Vec<f32> = Vec::new();
    loop {
        let packet = match format.next_packet() {
            Ok(Some(packet)) => packet,
            Ok(None) => break,
            // A truncated file ends the stream; what was decoded so far is kept.
            Err(SymphoniaError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                break
            }
            Err(e) => return Err(format!("corrupt audio: {e}")),
        };
        if packet.track_id != track_id {
            continue;
        }
        let buffer = match decoder.decode(&packet) {
            Ok(buffer) => buffer,
            // One malformed packet is skipped, as players do.
            Err(SymphoniaError::DecodeError(_)) => continue,
            Err(e) => return Err(format!("corrupt audio: {e}")),
        };
        let channels = buffer.spec().channels().count().max(1);
        sample_rate.get_or_insert(buffer.spec().rate());
        interleaved.resize(buffer.samples_interleaved(), 0.0);
        buffer.copy_to_slice_interleaved(&mut interleaved);
        downmix_into(&interleaved, channels, &mut samples);
    }
    let sample_rate = sample_rate
        .or(declared_rate)
        .ok_or_else(|| "no sample rate".to_string())?;
    Ok(Audio {
        samples,
        sample_rate,
    })
}

/// Averages the channels of interleaved frames (the mono mix-down of most tools).
fn downmix_into(interleaved: &[f32], channels: usize, out: &mut Vec<f32>) {
    if channels == 1 {
        out.extend_from_slice(interleaved);
        return;
    }
    let scale = 1.0 / channels as f32;
    out.extend(
        interleaved
            .chunks_exact(channels)
            .map(|f| f.iter().sum::<f32>() * scale),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wav::{wav_bytes, WavFormat};

    #[test]
    fn stereo_is_averaged_to_mono() {
        let mut out = Vec::new();
        downmix_into(&[1.0, 0.0, 0.5, 0.5], 2, &mut out);
        assert_eq!(out, vec![0.5, 0.5]);
    }

    #[test]
    fn a_written_wav_decodes_to_the_same_samples() {
        let samples: Vec<f32> = (0..1000).map(|i| (i as f32 * 0.01).sin() * 0.5).collect();
        let bytes = wav_bytes(&samples, 16_000, WavFormat::Float32).unwrap();
        let audio = decode_bytes(bytes, "test").unwrap();
        assert_eq!(audio.sample_rate, 16_000);
        assert_eq!(audio.samples, samples);
        let bytes = wav_bytes(&samples, 8_000, WavFormat::Pcm16).unwrap();
        let audio = decode_bytes(bytes, "test").unwrap();
        assert_eq!(audio.sample_rate, 8_000);
        let worst = audio
            .samples
            .iter()
            .zip(&samples)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(worst <= 1.0 / 32768.0 + 1e-7, "{worst}");
    }

    #[test]
    fn text_is_refused_with_one_line() {
        let err = decode_bytes(b"hello, not audio".to_vec(), "in.txt").unwrap_err();
        assert_eq!(err.exit_code(), 2);
        let msg = err.to_string();
        assert!(
            msg.starts_with("in.txt: not a WAV, FLAC, Ogg Vorbis or MP3 file"),
            "{msg}"
        );
        assert!(!msg.contains('\n'));
    }
}
