//! `enhance`: files (or a WAV on stdin) through a trained model, long inputs in overlapping
//! chunks so memory stays bounded; output 16 kHz WAV files (or stdout).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use candle_core::Device;
use clap::Args;
use ember_audio::{
    decode_bytes, decode_file, resample, unit_rms_factor, wav_bytes, write_wav, WavFormat,
    SAMPLE_RATE,
};
use ember_core::{EmberError, Result};
use ember_models::taylorse::TaylorSeNet;
use serde_json::{json, Value};

use crate::frontend::FrontEnd;
use crate::model;
use crate::plot::spectrogram_png;

#[derive(Debug, Clone, Args)]
pub struct EnhanceArgs {
    /// Audio files (WAV, FLAC, Ogg Vorbis, MP3; any rate), or - for a WAV on stdin.
    #[arg(required = true)]
    pub inputs: Vec<String>,
    /// Output folder (one NAME.wav per input), or - for stdout (one input only).
    #[arg(short = 'o', long)]
    pub out: String,
    /// A train run folder, a checkpoint, or hf://owner/repo/file.safetensors.
    #[arg(long)]
    pub model: String,
    /// Length of the pieces a long input is enhanced in (instance norms see one piece).
    #[arg(long, default_value_t = 10.0)]
    pub chunk_seconds: f64,
    /// Overlap of consecutive pieces, cross-faded.
    #[arg(long, default_value_t = 1.0)]
    pub overlap_seconds: f64,
    /// Write NAME.png (noisy and enhanced spectrograms) next to each output.
    #[arg(long)]
    pub plot: bool,
    /// Write 32-bit float WAV instead of 16-bit PCM.
    #[arg(long)]
    pub float: bool,
}

/// The enhanced version of `noisy`, which is already at 16 kHz and unit RMS: one STFT of the
/// whole signal, padded to whole hops as the authors' decode script does.
pub fn enhance_normalised(
    net: &TaylorSeNet,
    front: &FrontEnd,
    noisy: &[f32],
    device: &Device,
) -> Result<Vec<f32>> {
    let hop = front.stft.hop();
    let mut padded = noisy.to_vec();
    padded.resize(noisy.len().div_ceil(hop).max(2) * hop, 0.0);
    let input = front.batch(&[&padded], device)?;
    let output = net.forward(&input)?;
    let mut wave = front.waveform(&output.get(0)?, padded.len())?;
    wave.truncate(noisy.len());
    Ok(wave)
}

/// Pieces of `len` samples: (start, length) of `chunk` samples overlapping by `overlap`.
pub fn pieces(len: usize, chunk: usize, overlap: usize) -> Vec<(usize, usize)> {
    if len <= chunk {
        return vec![(0, len)];
    }
    let step = chunk - overlap;
    let mut out = Vec::new();
    let mut start = 0;
    loop {
        let end = (start + chunk).min(len);
        out.push((start, end - start));
        if end == len {
            return out;
        }
        start += step;
    }
}

/// `noisy` (16 kHz) enhanced: scaled to unit RMS over the whole file (the official level),
/// enhanced piece by piece with linear cross-fades over the overlaps, scaled back.
pub fn enhance_signal(
    net: &TaylorSeNet,
    front: &FrontEnd,
    noisy: &[f32],
    chunk: usize,
    overlap: usize,
    device: &Device,
) -> Result<Vec<f32>> {
    let c = unit_rms_factor(noisy);
    let scaled: Vec<f32> = noisy.iter().map(|x| x * c).collect();
    let mut out = vec![0.0f32; noisy.len()];
    let mut weight = vec![0.0f32; noisy.len()];
    let parts = pieces(noisy.len(), chunk, overlap);
    for (k, &(start, len)) in parts.iter().enumerate() {
        let piece = enhance_normalised(net, front, &scaled[start..start + len], device)?;
        for (i, y) in piece.iter().enumerate() {
            // Ramps over the overlaps (not at the file's own ends).
            let rise = if k > 0 && i < overlap {
                (i + 1) as f32 / (overlap + 1) as f32
            } else {
                1.0
            };
            let fall = if k + 1 < parts.len() && i >= len - overlap {
                (len - i) as f32 / (overlap + 1) as f32
            } else {
                1.0
            };
            let w = rise.min(fall);
            out[start + i] += w * y;
            weight[start + i] += w;
        }
    }
    Ok(out.iter().zip(&weight).map(|(y, w)| y / (w * c)).collect())
}

pub fn run(args: &EnhanceArgs, device: &Device) -> Result<Value> {
    let to_stdout = args.out == "-";
    if to_stdout && args.inputs.len() != 1 {
        return Err(EmberError::bad_input(
            "-o - writes one WAV to stdout: give one input",
        ));
    }
    if args.chunk_seconds.is_nan()
        || args.chunk_seconds < 1.0
        || args.overlap_seconds.is_nan()
        || args.overlap_seconds < 0.0
        || args.overlap_seconds * 2.0 > args.chunk_seconds
    {
        return Err(EmberError::bad_input(
            "--chunk-seconds must be at least 1 and --overlap-seconds between 0 and half of it",
        ));
    }
    let net = model::load(&args.model, device)?;
    let front = FrontEnd::new(net.config().fft_num)?;
    let chunk = (args.chunk_seconds * SAMPLE_RATE as f64) as usize;
    let overlap = (args.overlap_seconds * SAMPLE_RATE as f64) as usize;
    let format = if args.float {
        WavFormat::Float32
    } else {
        WavFormat::Pcm16
    };
    let out_dir = PathBuf::from(&args.out);
    if !to_stdout {
        std::fs::create_dir_all(&out_dir).map_err(|e| EmberError::io(&out_dir, e))?;
    }
    let mut results = Vec::new();
    for input in &args.inputs {
        let started = std::time::Instant::now();
        let audio = if input == "-" {
            let mut bytes = Vec::new();
            std::io::stdin()
                .read_to_end(&mut bytes)
                .map_err(|e| EmberError::io("stdin", e))?;
            decode_bytes(bytes, "stdin")?
        } else {
            decode_file(Path::new(input))?
        };
        let noisy = resample(&audio.samples, audio.sample_rate, SAMPLE_RATE)?;
        if noisy.len() <= front.stft.n_fft() {
            return Err(EmberError::bad_input(format!(
                "{input}: {} samples at 16 kHz is too short to enhance",
                noisy.len()
            )));
        }
        let enhanced = enhance_signal(&net, &front, &noisy, chunk, overlap, device)?;
        let seconds = noisy.len() as f64 / SAMPLE_RATE as f64;
        let elapsed = started.elapsed().as_secs_f64();
        if to_stdout {
            let bytes = wav_bytes(&enhanced, SAMPLE_RATE, format)?;
            let mut out = std::io::stdout().lock();
            out.write_all(&bytes)
                .and_then(|_| out.flush())
                .map_err(|e| EmberError::io("stdout", e))?;
            return Ok(Value::Array(Vec::new()));
        }
        let stem = if input == "-" {
            "stdin".to_string()
        } else {
            Path::new(input)
                .file_stem()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned()
        };
        let path = out_dir.join(format!("{stem}.wav"));
        write_wav(&path, &enhanced, SAMPLE_RATE, format)?;
        let mut record = json!({"input": input, "output": path, "seconds": seconds, "real_time_factor": elapsed / seconds});
        if args.plot {
            let png = out_dir.join(format!("{stem}.png"));
            spectrogram_png(&png, &front, &[("noisy", &noisy), ("enhanced", &enhanced)])?;
            record["plot"] = json!(png);
        }
        results.push(record);
    }
    Ok(Value::Array(results))
}

#[cfg(test)]
mod tests {
    use super::pieces;

    #[test]
    fn pieces_cover_the_signal_with_the_overlap() {
        assert_eq!(pieces(50, 100, 10), vec![(0, 50)]);
        assert_eq!(pieces(250, 100, 20), vec![(0, 100), (80, 100), (160, 90)]);
    }
}
