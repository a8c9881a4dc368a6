//! `train`: TaylorSENet on noisy mixtures drawn on the fly from a corpus, with the official
//! recipe (Adam with coupled weight decay 1e-7, global gradient-norm clipping at 5, a step
//! skipped when a gradient is not finite, the compressed complex + magnitude loss, the
//! learning rate halved when validation SI-SDR fails to improve twice in a row and training
//! stopped at the third) scaled to steps: every `--valid-every` steps is one "epoch" of
//! that policy. Checkpointed atomically every `--checkpoint-every` steps; `--resume DIR`
//! continues a killed run exactly (each batch is a function of the seed and the step).

use std::path::PathBuf;
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use clap::Args;
use ember_audio::{si_sdr, SAMPLE_RATE};
use ember_core::checkpoint::STATE_PREFIX;
use ember_core::plot::{draw_curves_along, Panel, Series};
use ember_core::{Checkpoint, EmberError, Result, RunDir};
use ember_losses::{com_mag_loss, Distance};
use ember_train::clip::clip_grad_norm;
use ember_train::optim::{Method, Optimizer, ParamGroup};
use ember_train::progress::Progress;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::corpus::Corpus;
use crate::frontend::FrontEnd;
use crate::mixer::{draw, MixSpec, Mixture};
use crate::model::{self, Loaded};

#[derive(Debug, Clone, Args, Serialize, Deserialize)]
pub struct TrainArgs {
    /// Corpus folder with clean/ and noise/ (scripts/setup_speech.sh builds data/speech/train).
    #[arg(long, default_value = "data/speech/train")]
    pub data: PathBuf,
    /// Run folder (config.json, metrics.jsonl, last/best.safetensors, curves.png).
    #[arg(long, required_unless_present = "resume")]
    pub out: Option<PathBuf>,
    /// Continue the run in this folder from its last checkpoint (its settings are reused).
    #[arg(long, conflicts_with = "out")]
    #[serde(skip)]
    pub resume: Option<PathBuf>,
    /// Model: a preset (small, official) or a JSON file of TaylorSENet's constructor arguments.
    #[arg(long, default_value = "small")]
    pub model: String,
    /// Number of high-order Taylor terms (overrides the model's; 0 = the 0th-order filter alone).
    #[arg(long)]
    pub order: Option<usize>,
    #[arg(long, default_value_t = 600)]
    pub steps: usize,
    #[arg(long, default_value_t = 8)]
    pub batch_size: usize,
    /// Seconds of speech per training example (shorter utterances are zero-padded and masked).
    #[arg(long, default_value_t = 2.0)]
    pub chunk_seconds: f64,
    /// Training SNRs are drawn uniformly from [--snr-min, --snr-max] dB.
    #[arg(long, default_value_t = -5.0, allow_hyphen_values = true)]
    pub snr_min: f32,
    #[arg(long, default_value_t = 10.0, allow_hyphen_values = true)]
    pub snr_max: f32,
    /// Adam learning rate (official 2e-4 for 30 epochs of DNS data; 1e-3 suits short runs).
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    #[arg(long, default_value_t = 1e-7)]
    pub weight_decay: f64,
    /// Global gradient-norm clipping.
    #[arg(long, default_value_t = 5.0)]
    pub clip: f64,
    /// Validate (and apply the learning-rate policy) every this many steps.
    #[arg(long, default_value_t = 100)]
    pub valid_every: usize,
    /// Validation mixtures, from every 20th clean file (held out of training).
    #[arg(long, default_value_t = 24)]
    pub valid_count: usize,
    #[arg(long, default_value_t = 50)]
    pub checkpoint_every: usize,
    /// No progress lines on stderr.
    #[arg(long)]
    #[serde(skip)]
    pub quiet: bool,
    #[arg(skip)]
    pub seed: u64,
}

/// Where a run stands, saved in each checkpoint.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct State {
    step: usize,
    lr: f64,
    /// Validations in a row without improvement over the previous one.
    stale: usize,
    previous: Option<f64>,
    best: Option<f64>,
    skipped: usize,
    /// Steps the optimizer took (skipped ones excluded): Adam's bias correction counts them.
    optimizer_steps: u64,
    stopped_early: bool,
}

const HELD_OUT_EVERY: usize = 20;

pub fn run(args: &TrainArgs, seed: u64, device: &Device) -> Result<Value> {
    let (dir, args, resuming) = match &args.resume {
        Some(root) => {
            let dir = RunDir::open(root)?;
            let mut saved: TrainArgs = serde_json::from_value(dir.read_json("config.json")?)
                .map_err(|e| {
                    EmberError::bad_input(format!(
                        "{}: config.json is not a taylorse-enhance run ({e})",
                        root.display()
                    ))
                })?;
            saved.quiet = args.quiet;
            (dir, saved, true)
        }
        None => {
            let out = args
                .out
                .as_ref()
                .expect("clap requires --out without --resume");
            let dir = RunDir::create(out)?;
            let mut args = args.clone();
            args.seed = seed;
            dir.write_json(
                "config.json",
                &serde_json::to_value(&args).expect("settings serialise"),
            )?;
            (dir, args, false)
        }
    };
    validate(&args)?;
    let config = model::config_from(&args.model, args.order)?;
    let front = FrontEnd::new(config.fft_num)?;
    let corpus = Corpus::open(&args.data)?;
    let (held_out, train_clean) = corpus.clean.split(HELD_OUT_EVERY, 0);
    if train_clean.is_empty() || held_out.is_empty() {
        return Err(EmberError::bad_input(format!("{}: needs at least 2 clean files (every {HELD_OUT_EVERY}th is held out for validation)", args.data.display())));
    }
    let spec = MixSpec {
        chunk: Some((args.chunk_seconds * SAMPLE_RATE as f64) as usize),
        snr_min: args.snr_min,
        snr_max: args.snr_max,
    };
    let valid: Vec<Mixture> = (0..args.valid_count as u64)
        .map(|i| draw(&held_out, &corpus.noise, &spec, args.seed ^ 0x5eed, i, None))
        .collect::<Result<_>>()?;

    let Loaded { net, vars } = model::build(&config, args.seed, device)?;
    let mut optimizer = adam(&vars, args.weight_decay, args.lr);
    let mut state = State {
        lr: args.lr,
        ..State::default()
    };
    if resuming {
        state = restore(&dir, &vars, &mut optimizer, device)?;
        dir.retain_metrics(|m| m["step"].as_u64().is_some_and(|s| s as usize <= state.step))?;
    }
    let params: usize = vars.named().iter().map(|(_, v)| v.elem_count()).sum();
    eprintln!(
        "data: {} ({} clean files, {:.1} min; {} noise files, {:.1} min; {} held out for validation)",
        args.data.display(),
        train_clean.len(),
        train_clean.seconds() / 60.0,
        corpus.noise.len(),
        corpus.noise.seconds() / 60.0,
        held_out.len()
    );
    // Each metrics record holds the seconds since the one before (or since this session
    // started): the training time of a run, resumed or not, is their sum (as the engine sums
    // its epochs' seconds).
    let mut since_record = Instant::now();
    let progress = Progress::new("train".into(), args.steps, state.step, args.quiet);
    let mut window = Vec::new();
    while state.step < args.steps && !state.stopped_early {
        let batch: Vec<Mixture> = (0..args.batch_size)
            .map(|i| {
                draw(
                    &train_clean,
                    &corpus.noise,
                    &spec,
                    args.seed,
                    (state.step * args.batch_size + i) as u64,
                    None,
                )
            })
            .collect::<Result<_>>()?;
        let loss = step(&net, &front, &batch, &mut optimizer, args.clip, device)?;
        state.step += 1;
        match loss {
            Some(l) => window.push(l),
            None => state.skipped += 1,
        }
        progress.update(
            state.step,
            &format!(
                "loss {:.4} lr {:.1e}",
                window.last().copied().unwrap_or(f64::NAN),
                optimizer.lr()
            ),
        );
        let validating = state.step.is_multiple_of(args.valid_every) || state.step == args.steps;
        if validating {
            let frozen = model::frozen(&vars, &config, device)?;
            let score = validate_si_sdr(&frozen, &front, &valid, device)?;
            apply_policy(&mut state, score, &mut optimizer);
            let improved = state.best.is_none_or(|b| score > b);
            if improved {
                state.best = Some(score);
                let tensors = vars.tensors();
                Checkpoint::save(
                    &dir.file("best.safetensors"),
                    &model::meta(&config),
                    tensors.iter().map(|(k, t)| (k.as_str(), t)),
                )?;
            }
            let train_loss = window.iter().sum::<f64>() / window.len().max(1) as f64;
            window.clear();
            dir.append_metrics(&json!({
                "step": state.step, "train_loss": train_loss, "valid_si_sdr": score, "lr": optimizer.lr(),
                "skipped_steps": state.skipped,
                "interval_seconds": since_record.elapsed().as_secs_f64(),
            }))?;
            since_record = Instant::now();
            if !args.quiet {
                eprintln!(
                    "step {}/{}: train loss {train_loss:.4}, validation SI-SDR {score:.2} dB{}",
                    state.step,
                    args.steps,
                    if improved { " (best)" } else { "" }
                );
            }
        }
        if validating
            || state.step.is_multiple_of(args.checkpoint_every)
            || state.step == args.steps
        {
            save_last(&dir, &config, &vars, &optimizer, &state)?;
        }
    }
    progress.finish();
    let metrics = dir.read_metrics()?;
    draw_curves(&dir, &metrics)?;
    let train_seconds: f64 = metrics
        .iter()
        .filter_map(|m| m["interval_seconds"].as_f64())
        .sum();
    let summary = json!({
        "command": "taylorse-enhance train",
        "run": dir.root(),
        "model": serde_json::to_value(&config).expect("configs serialise"),
        "parameters": params,
        "steps": state.step,
        "skipped_steps": state.skipped,
        "stopped_early": state.stopped_early,
        "best_valid_si_sdr": state.best,
        "train_seconds": train_seconds,
        "checkpoint": dir.file("best.safetensors"),
    });
    dir.write_json("summary.json", &summary)?;
    Ok(summary)
}

fn validate(args: &TrainArgs) -> Result<()> {
    let bad = |m: &str| Err(EmberError::bad_input(m.to_string()));
    if args.steps == 0
        || args.batch_size == 0
        || args.valid_every == 0
        || args.checkpoint_every == 0
        || args.valid_count == 0
    {
        return bad("--steps, --batch-size, --valid-every, --checkpoint-every and --valid-count must be at least 1");
    }
    if !(0.05..=60.0).contains(&args.chunk_seconds) {
        return bad("--chunk-seconds must be within [0.05, 60]");
    }
    if args.snr_min > args.snr_max {
        return bad("--snr-min must not exceed --snr-max");
    }
    if args.lr.is_nan()
        || args.lr <= 0.0
        || args.lr.is_infinite()
        || args.weight_decay < 0.0
        || args.clip <= 0.0
    {
        return bad("--lr and --clip must be positive and --weight-decay not negative");
    }
    Ok(())
}

/// The official optimizer: Adam (betas 0.9 / 0.999), weight decay coupled, one group.
fn adam(vars: &ember_core::SeededVarMap, weight_decay: f64, lr: f64) -> Optimizer {
    let groups = vec![ParamGroup {
        params: vars.named(),
        weight_decay,
        trust: false,
    }];
    Optimizer::new(
        Method::Adam {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        },
        groups,
        lr,
    )
}

/// The loss of `net` on a batch of equally long mixtures, padded frames masked.
fn batch_loss(
    net: &ember_models::taylorse::TaylorSeNet,
    front: &FrontEnd,
    batch: &[Mixture],
    device: &Device,
) -> Result<Tensor> {
    let noisy: Vec<&[f32]> = batch.iter().map(|m| m.noisy.as_slice()).collect();
    let clean: Vec<&[f32]> = batch.iter().map(|m| m.clean.as_slice()).collect();
    let input = front.batch(&noisy, device)?;
    let target = front.batch(&clean, device)?;
    let frames: Vec<usize> = batch.iter().map(|m| front.stft.frames(m.length)).collect();
    Ok(com_mag_loss(&net.forward(&input)?, &target, &frames, 0.5, Distance::L2)?.loss)
}

/// One optimisation step; None when a gradient was not finite (the step is skipped).
fn step(
    net: &ember_models::taylorse::TaylorSeNet,
    front: &FrontEnd,
    batch: &[Mixture],
    optimizer: &mut Optimizer,
    clip: f64,
    device: &Device,
) -> Result<Option<f64>> {
    let loss = batch_loss(net, front, batch, device)?;
    let value = loss.to_dtype(DType::F64)?.to_scalar::<f64>()?;
    let Some(mut grads) = optimizer.backward(&loss)? else {
        return Ok(None);
    };
    let vars: Vec<candle_core::Var> = optimizer.params().map(|(_, v)| v.clone()).collect();
    let norm = clip_grad_norm(&mut grads, vars.iter(), clip)?;
    if !norm.is_finite() || !value.is_finite() {
        return Ok(None);
    }
    optimizer.step(&grads)?;
    Ok(Some(value))
}

/// Mean SI-SDR (dB) of the enhanced validation mixtures against their clean speech, over
/// each mixture's speech samples; `net` is a frozen copy, so no autograd graph is recorded.
fn validate_si_sdr(
    net: &ember_models::taylorse::TaylorSeNet,
    front: &FrontEnd,
    valid: &[Mixture],
    device: &Device,
) -> Result<f64> {
    let mut total = 0.0;
    for m in valid {
        let enhanced = crate::enhance::enhance_normalised(net, front, &m.noisy, device)?;
        total += si_sdr(&m.clean[..m.length], &enhanced[..m.length]);
    }
    Ok(total / valid.len() as f64)
}

/// The official schedule: compared with the previous validation, no gain counts one more
/// stale validation, a gain resets the count; two in a row halve the learning rate, three
/// stop training.
fn apply_policy(state: &mut State, score: f64, optimizer: &mut Optimizer) {
    match state.previous {
        Some(prev) if score <= prev => state.stale += 1,
        _ => state.stale = 0,
    }
    state.previous = Some(score);
    if state.stale == 2 {
        state.lr /= 2.0;
        optimizer.set_lr(state.lr);
    } else if state.stale >= 3 {
        state.stopped_early = true;
    }
}

fn save_last(
    dir: &RunDir,
    config: &ember_models::taylorse::TaylorSeConfig,
    vars: &ember_core::SeededVarMap,
    optimizer: &Optimizer,
    state: &State,
) -> Result<()> {
    let mut meta = model::meta(config);
    let state = State {
        optimizer_steps: optimizer.steps(),
        ..state.clone()
    };
    meta.extra.insert(
        "train_state".into(),
        serde_json::to_string(&state).expect("state serialises"),
    );
    let mut tensors = vars.tensors();
    tensors.extend(optimizer.state_tensors(STATE_PREFIX));
    Checkpoint::save(
        &dir.file("last.safetensors"),
        &meta,
        tensors.iter().map(|(k, t)| (k.as_str(), t)),
    )
}

fn restore(
    dir: &RunDir,
    vars: &ember_core::SeededVarMap,
    optimizer: &mut Optimizer,
    device: &Device,
) -> Result<State> {
    let path = dir.file("last.safetensors");
    if !path.is_file() {
        return Ok(State {
            lr: optimizer.lr(),
            ..State::default()
        });
    }
    let ckpt = Checkpoint::load(&path, device)?;
    let state: State = ckpt
        .meta
        .extra
        .get("train_state")
        .and_then(|s| serde_json::from_str(s).ok())
        .ok_or_else(|| {
            EmberError::bad_input(format!(
                "{}: no training state (not a taylorse-enhance checkpoint)",
                path.display()
            ))
        })?;
    let weights = ckpt
        .tensors
        .iter()
        .filter(|(k, _)| !k.starts_with(STATE_PREFIX))
        .map(|(k, t)| (k.clone(), t.clone()))
        .collect();
    ember_models::load_into(vars.vars(), &weights, &path.display().to_string())?;
    optimizer.load_state(STATE_PREFIX, &ckpt.tensors, state.optimizer_steps)?;
    optimizer.set_lr(state.lr);
    Ok(state)
}

fn draw_curves(dir: &RunDir, metrics: &[Value]) -> Result<()> {
    let series = |key: &str, name: &str| Series {
        name: name.into(),
        points: metrics
            .iter()
            .filter_map(|m| Some((m["step"].as_f64()?, m[key].as_f64()?)))
            .collect(),
    };
    draw_curves_along(
        &dir.file("curves.png"),
        "step",
        &[
            Panel {
                title: "training loss".into(),
                y_label: "loss".into(),
                series: vec![series("train_loss", "train")],
            },
            Panel {
                title: "validation".into(),
                y_label: "SI-SDR (dB)".into(),
                series: vec![series("valid_si_sdr", "enhanced")],
            },
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use ember_models::taylorse::TaylorSeConfig;

    fn clips() -> Corpus {
        let root =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../assets/speech/train");
        Corpus::open(&root).unwrap()
    }

    #[test]
    fn every_parameter_gets_a_gradient_and_a_fixed_batch_is_learnt() {
        let device = Device::Cpu;
        let config = TaylorSeConfig {
            c: 4,
            cd1: 8,
            p: 1,
            dilations: vec![1, 2],
            order_num: 2,
            ..TaylorSeConfig::small()
        };
        let Loaded { net, vars } = model::build(&config, 0, &device).unwrap();
        let front = FrontEnd::new(config.fft_num).unwrap();
        let corpus = clips();
        let spec = MixSpec {
            chunk: Some(4000),
            snr_min: 0.0,
            snr_max: 5.0,
        };
        let batch: Vec<Mixture> = (0..2)
            .map(|i| draw(&corpus.clean, &corpus.noise, &spec, 0, i, None).unwrap())
            .collect();

        // No silently missing gradient (candle drops some without an error): every variable
        // of every block, the orders' operators included, is reached by the loss.
        let grads = batch_loss(&net, &front, &batch, &device)
            .unwrap()
            .backward()
            .unwrap();
        for (name, var) in vars.named() {
            let g = grads
                .get(&var)
                .unwrap_or_else(|| panic!("no gradient for {name}"));
            let norm: f32 = g.sqr().unwrap().sum_all().unwrap().to_scalar().unwrap();
            assert!(
                norm > 0.0 && norm.is_finite(),
                "{name}: gradient norm {norm}"
            );
        }

        let mut optimizer = adam(&vars, 0.0, 3e-3);
        let losses: Vec<f64> = (0..25)
            .map(|_| {
                step(&net, &front, &batch, &mut optimizer, 5.0, &device)
                    .unwrap()
                    .unwrap()
            })
            .collect();
        assert!(losses[24] < 0.6 * losses[0], "{losses:?}");
    }
}
