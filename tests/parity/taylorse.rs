//! TaylorSENet fixtures, in three parts: the signal front end (STFT, compression, iSTFT of the
//! outputs, the loss mask's frame counts) through ember-audio with the manifest's `signal`
//! settings; the network rebuilt from the manifest's config with the official weights, every
//! intermediate output compared; the loss with the manifest's hyperparameters.

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use ember_audio::{Spectrum, Stft};
use ember_core::SeededVarMap;
use ember_losses::{com_mag_loss, Distance};
use ember_models::taps::Taps;
use ember_models::taylorse::{TaylorSeConfig, TaylorSeNet};
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

/// The io tensors the front end produces or checks (the others are the network's and the loss's).
const FRONT_END: &[&str] = &[
    "noisy_wav",
    "clean_wav",
    "lengths",
    "frames",
    "noisy_stft",
    "input",
    "target",
    "input_mag",
    "output_wav",
    "zero_term_wav",
];

/// One line per part: the front end, the network, the loss.
pub fn parity(
    dir: &Path,
    manifest: &Value,
    dev: &Device,
) -> Vec<(String, Result<Outcome, String>)> {
    vec![
        ("front_end".to_string(), front_end(dir, manifest)),
        ("network".to_string(), network(dir, manifest, dev)),
        ("loss".to_string(), loss(dir, manifest)),
    ]
}

fn network(dir: &Path, manifest: &Value, dev: &Device) -> Result<Outcome, String> {
    let config: TaylorSeConfig =
        serde_json::from_value(manifest["config"].clone()).map_err(|e| format!("config: {e}"))?;
    let io = load_file(
        dir,
        manifest["io"].as_str().ok_or("manifest has no `io` file")?,
    )?;
    let weights = load_file(
        dir,
        manifest["weights"]
            .as_str()
            .ok_or("manifest has no `weights` file")?,
    )?;
    let map = SeededVarMap::new(0);
    let model = TaylorSeNet::new(map.var_builder(DType::F32, dev), &config).map_err(err)?;
    ember_models::load_into(map.vars(), &weights, "official weights").map_err(err)?;
    let input = get(&io, "input")?.to_device(dev).map_err(err)?;
    let mut taps = Taps::on();
    model.forward_with_taps(&input, &mut taps).map_err(err)?;
    let ours: std::collections::HashMap<String, Tensor> = taps.into_vec().into_iter().collect();
    let tol = Tolerance::from_manifest(&manifest["tolerance"]);
    let mut checks = Checks {
        tol: &tol,
        worst: 0.0,
    };
    let loss_names = loss_outputs(manifest);
    let outputs = manifest["outputs"]
        .as_object()
        .ok_or("manifest has no outputs")?;
    for name in outputs
        .keys()
        .filter(|n| !FRONT_END.contains(&n.as_str()) && !loss_names.contains(n))
    {
        let mine = ours
            .get(name)
            .ok_or(format!("the network has no output named `{name}`"))?;
        checks.check(name, mine, get(&io, name)?)?;
    }
    Ok(Outcome::Ok(checks.worst))
}

/// The loss value and its parts: `loss.value` and the outputs named after it (`loss_*`).
fn loss_outputs(manifest: &Value) -> Vec<String> {
    let value = manifest["loss"]["value"].as_str().unwrap_or("loss");
    let outputs = manifest["outputs"]
        .as_object()
        .map(|o| o.keys().cloned().collect::<Vec<_>>())
        .unwrap_or_default();
    outputs
        .into_iter()
        .filter(|n| n == value || n.starts_with(&format!("{value}_")))
        .collect()
}

fn loss(dir: &Path, manifest: &Value) -> Result<Outcome, String> {
    let spec = &manifest["loss"];
    let alpha = spec["alpha"].as_f64().ok_or("loss.alpha missing")?;
    let distance = match spec["l_type"].as_str() {
        Some("L2") => Distance::L2,
        Some("L1") => Distance::L1,
        other => return Err(format!("loss.l_type {other:?} is not L1 or L2")),
    };
    let io = load_file(
        dir,
        manifest["io"].as_str().ok_or("manifest has no `io` file")?,
    )?;
    let args: Vec<&str> = spec["args"]
        .as_array()
        .ok_or("loss.args missing")?
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let [estimate, target, frames] = args[..] else {
        return Err(format!(
            "loss.args {args:?} is not [estimate, target, frames]"
        ));
    };
    let frames: Vec<usize> = get(&io, frames)?
        .to_dtype(DType::I64)
        .and_then(|t| t.to_vec1::<i64>())
        .map_err(err)?
        .into_iter()
        .map(|f| f as usize)
        .collect();
    let l = com_mag_loss(
        get(&io, estimate)?,
        get(&io, target)?,
        &frames,
        alpha,
        distance,
    )
    .map_err(err)?;
    let tol = Tolerance::from_manifest(&manifest["tolerance"]);
    let mut checks = Checks {
        tol: &tol,
        worst: 0.0,
    };
    let value = spec["value"].as_str().unwrap_or("loss");
    for (name, ours) in [
        (value.to_string(), &l.loss),
        (format!("{value}_com"), &l.complex),
        (format!("{value}_mag"), &l.magnitude),
    ] {
        if let Some(theirs) = io.get(&name) {
            checks.check(&name, &ours.reshape(theirs.shape()).map_err(err)?, theirs)?;
        }
    }
    Ok(Outcome::Ok(checks.worst))
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
