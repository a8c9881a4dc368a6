//! `eval`: fixed noisy mixtures of a test corpus (whole utterances, each SNR of a list)
//! scored before and after enhancement with SI-SDR, STOI and ESTOI; optionally the WAVs for
//! `scripts/eval_pesq.py` and spectrogram PNGs.

use std::path::PathBuf;

use candle_core::Device;
use clap::Args;
use ember_audio::{estoi, si_sdr, stoi, write_wav, WavFormat, SAMPLE_RATE};
use ember_core::{EmberError, Result};
use serde_json::{json, Value};

use crate::corpus::Corpus;
use crate::enhance::enhance_normalised;
use crate::frontend::FrontEnd;
use crate::mixer::{draw, MixSpec};
use crate::model;
use crate::plot::spectrogram_png;

#[derive(Debug, Clone, Args)]
pub struct EvalArgs {
    /// A train run folder, a checkpoint, or hf://owner/repo/file.safetensors.
    #[arg(long)]
    pub model: String,
    /// Test corpus with clean/ and noise/ (speakers and noise types unseen in training).
    #[arg(long, default_value = "data/speech/test")]
    pub data: PathBuf,
    /// SNRs in dB, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "-5,0,5,10",
        allow_hyphen_values = true
    )]
    pub snrs: Vec<f32>,
    /// Mixtures per SNR (the same utterances and noises at every SNR).
    #[arg(long, default_value_t = 20)]
    pub count: usize,
    /// Utterances longer than this are cut (seconds), to bound the cost.
    #[arg(long, default_value_t = 8.0)]
    pub max_seconds: f64,
    /// Write DIR/{clean,noisy,enhanced}/snr<S>_<i>.wav (for scripts/eval_pesq.py).
    #[arg(long)]
    pub write: Option<PathBuf>,
    /// Write DIR/snr<S>.png: noisy, enhanced and clean spectrograms of each SNR's first mixture.
    #[arg(long)]
    pub plot: Option<PathBuf>,
}

#[derive(Default, Clone, Copy)]
struct Scores {
    si_sdr: f64,
    stoi: f64,
    estoi: f64,
}

impl Scores {
    fn of(clean: &[f32], x: &[f32]) -> Self {
        Self {
            si_sdr: si_sdr(clean, x),
            stoi: stoi(clean, x, SAMPLE_RATE),
            estoi: estoi(clean, x, SAMPLE_RATE),
        }
    }

    fn add(&mut self, o: Self) {
        self.si_sdr += o.si_sdr;
        self.stoi += o.stoi;
        self.estoi += o.estoi;
    }

    fn mean_json(self, n: usize) -> Value {
        let n = n.max(1) as f64;
        json!({"si_sdr": self.si_sdr / n, "stoi": self.stoi / n, "estoi": self.estoi / n})
    }
}

pub fn run(args: &EvalArgs, seed: u64, device: &Device) -> Result<Value> {
    if args.count == 0
        || args.snrs.is_empty()
        || args.max_seconds.is_nan()
        || args.max_seconds < 1.0
    {
        return Err(EmberError::bad_input(
            "--count and --snrs must not be empty and --max-seconds at least 1",
        ));
    }
    let net = model::load(&args.model, device)?;
    let front = FrontEnd::new(net.config().fft_num)?;
    let corpus = Corpus::open(&args.data)?;
    let max = (args.max_seconds * SAMPLE_RATE as f64) as usize;
    let spec = MixSpec {
        chunk: None,
        snr_min: 0.0,
        snr_max: 0.0,
    };
    let started = std::time::Instant::now();
    let mut by_snr = serde_json::Map::new();
    let mut written = Vec::new();
    for &snr in &args.snrs {
        let (mut noisy_total, mut enhanced_total) = (Scores::default(), Scores::default());
        for i in 0..args.count {
            let mut m = draw(
                &corpus.clean,
                &corpus.noise,
                &spec,
                seed,
                i as u64,
                Some(snr),
            )?;
            let len = m.length.min(max);
            m.noisy.truncate(len);
            m.clean.truncate(len);
            let enhanced = enhance_normalised(&net, &front, &m.noisy, device)?;
            noisy_total.add(Scores::of(&m.clean, &m.noisy));
            enhanced_total.add(Scores::of(&m.clean, &enhanced));
            if let Some(dir) = &args.write {
                let file = format!("snr{snr}_{i}.wav");
                written.push(json!({"file": file, "snr_db": snr, "clean": m.clean_name, "noise": m.noise_name, "seconds": len as f64 / SAMPLE_RATE as f64}));
                for (kind, wave) in [
                    ("clean", &m.clean),
                    ("noisy", &m.noisy),
                    ("enhanced", &enhanced),
                ] {
                    let sub = dir.join(kind);
                    std::fs::create_dir_all(&sub).map_err(|e| EmberError::io(&sub, e))?;
                    write_wav(&sub.join(&file), wave, SAMPLE_RATE, WavFormat::Float32)?;
                }
            }
            if let (Some(dir), 0) = (&args.plot, i) {
                std::fs::create_dir_all(dir).map_err(|e| EmberError::io(dir, e))?;
                let signals = [
                    ("noisy", m.noisy.as_slice()),
                    ("enhanced", enhanced.as_slice()),
                    ("clean", m.clean.as_slice()),
                ];
                spectrogram_png(&dir.join(format!("snr{snr}.png")), &front, &signals)?;
            }
        }
        eprintln!("eval: {snr} dB done ({} mixtures)", args.count);
        by_snr.insert(format!("{snr}"), json!({"noisy": noisy_total.mean_json(args.count), "enhanced": enhanced_total.mean_json(args.count)}));
    }
    if let Some(dir) = &args.write {
        let list = serde_json::to_vec_pretty(&written).expect("JSON serialises");
        ember_core::atomic::write_atomic(&dir.join("mixtures.json"), &list)?;
    }
    Ok(json!({
        "command": "taylorse-enhance eval",
        "model": args.model,
        "data": args.data,
        "mixtures_per_snr": args.count,
        "seed": seed,
        "order": net.config().order_num,
        "by_snr_db": by_snr,
        "seconds": started.elapsed().as_secs_f64(),
    }))
}
