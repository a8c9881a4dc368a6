//! TaylorSENet fixtures: the signal front end (STFT, compression, iSTFT of the outputs, the
//! loss mask's frame counts) through ember-audio with the manifest's `signal` settings. The
//! network itself is pending until `ember-models::taylorse` lands.

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use ember_audio::{Spectrum, Stft};
use serde_json::Value;

use crate::compare::{err, get, load_file, Checks, Tolerance};
use crate::Outcome;

/// The front end's STFT and compression power from the manifest's `signal` block.
struct FrontEnd {
    stft: Stft,
    power: f32,
}

impl FrontEnd {
    fn from_manifest(signal: &Value) -> Result<Self, String> {
        let field = |k: &str| {
            signal[k]
                .as_u64()
                .map(|v| v as usize)
                .ok_or(format!("signal.{k} missing"))
        };
        let stft =
            Stft::new(field("n_fft")?, field("hop_length")?, field("win_length")?).map_err(err)?;
        // "power-law 0.5 on magnitude, ...": the exponent is the number after "power-law".
        let power = signal["compression"]
            .as_str()
            .and_then(|s| s.strip_prefix("power-law "))
            .and_then(|s| s.split_whitespace().next())
            .and_then(|s| s.parse().ok())
            .ok_or("signal.compression is not `power-law P ...`")?;
        Ok(Self { stft, power })
    }

    /// (B, 2, T, F) spectra of the rows of a (B, L) batch.
    fn spectra(&self, wav: &Tensor) -> Result<Tensor, String> {
        let rows: Vec<Vec<f32>> = wav.to_vec2().map_err(err)?;
        let spectra = rows
            .iter()
            .map(|row| to_tensor(&self.stft.forward(row).map_err(err)?))
            .collect::<Result<Vec<_>, _>>()?;
        Tensor::stack(&spectra, 0).map_err(err)
    }

    /// Every (2, T, F) spectrum of a (B, 2, T, F) batch raised to `power` (phase kept).
    fn powered(&self, spectra: &Tensor, power: f32) -> Result<Tensor, String> {
        let (b, _, t, f) = spectra.dims4().map_err(err)?;
        let rows = (0..b)
            .map(|i| {
                let data: Vec<f32> = spectra
                    .get(i)
                    .and_then(|s| s.flatten_all()?.to_vec1())
                    .map_err(err)?;
                to_tensor(&Spectrum::from_channels(t, f, data).powered(power))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Tensor::stack(&rows, 0).map_err(err)
    }

    /// Waveforms (B, L) of compressed spectra (B, 2, T, F): decompressed, inverted to the
    /// padded length, samples past each utterance's length zeroed.
    fn waveforms(
        &self,
        spectra: &Tensor,
        lengths: &[i64],
        padded: usize,
    ) -> Result<Tensor, String> {
        let (b, _, t, f) = spectra.dims4().map_err(err)?;
        let mut rows = Vec::with_capacity(b);
        for (i, &len) in lengths.iter().enumerate() {
            let data: Vec<f32> = spectra
                .get(i)
                .and_then(|s| s.flatten_all()?.to_vec1())
                .map_err(err)?;
            let spectrum = Spectrum::from_channels(t, f, data).powered(1.0 / self.power);
            let mut wav = self.stft.inverse(&spectrum, padded).map_err(err)?;
            wav[len as usize..].fill(0.0);
            rows.push(Tensor::new(wav, &Device::Cpu).map_err(err)?);
        }
        Tensor::stack(&rows, 0).map_err(err)
    }
}

fn to_tensor(s: &Spectrum) -> Result<Tensor, String> {
    Tensor::from_slice(&s.data, (2, s.frames, s.bins), &Device::Cpu).map_err(err)
}

/// One line per part: the front end, then the network (pending).
pub fn parity(dir: &Path, manifest: &Value) -> Vec<(String, Result<Outcome, String>)> {
    vec![
        ("front_end".to_string(), front_end(dir, manifest)),
        ("network".to_string(), Ok(Outcome::Pending)),
    ]
}

fn front_end(dir: &Path, manifest: &Value) -> Result<Outcome, String> {
    let io = load_file(
        dir,
        manifest["io"].as_str().ok_or("manifest has no `io` file")?,
    )?;
    let front = FrontEnd::from_manifest(&manifest["signal"])?;
    let tol = Tolerance::from_manifest(&manifest["tolerance"]);
    let mut checks = Checks {
        tol: &tol,
        worst: 0.0,
    };
    let noisy = get(&io, "noisy_wav")?;
    checks.check(
        "noisy_stft",
        &front.spectra(noisy)?,
        get(&io, "noisy_stft")?,
    )?;
    // Compression on torch's own spectrum: near-zero bins make |X|^0.5 amplify float32 FFT
    // rounding (a clean bin of |X| = 2e-6 against torch's 2e-5 error moves the compressed
    // value by 3e-3), so each step is compared on the official numbers it starts from.
    let input = front.powered(get(&io, "noisy_stft")?, front.power)?;
    checks.check("input", &input, get(&io, "input")?)?;
    let magnitude = input.sqr().and_then(|s| s.sum(1)?.sqrt()).map_err(err)?;
    checks.check("input_mag", &magnitude, get(&io, "input_mag")?)?;
    let clean_stft = front.powered(get(&io, "target")?, 1.0 / front.power)?;
    checks.check(
        "target (decompressed)",
        &front.spectra(get(&io, "clean_wav")?)?,
        &clean_stft,
    )?;

    let lengths: Vec<i64> = get(&io, "lengths")?
        .to_dtype(DType::I64)
        .and_then(|t| t.to_vec1())
        .map_err(err)?;
    let frames: Vec<i64> = lengths
        .iter()
        .map(|&l| front.stft.frames(l as usize) as i64)
        .collect();
    let official: Vec<i64> = get(&io, "frames")?
        .to_dtype(DType::I64)
        .and_then(|t| t.to_vec1())
        .map_err(err)?;
    if frames != official {
        return Err(format!("frames: {frames:?}, official {official:?}"));
    }
    let padded = noisy.dim(1).map_err(err)?;
    for (spectra, wav) in [("output", "output_wav"), ("zero_term", "zero_term_wav")] {
        let ours = front.waveforms(get(&io, spectra)?, &lengths, padded)?;
        checks.check(wav, &ours, get(&io, wav)?)?;
    }
    Ok(Outcome::Ok(checks.worst))
}
