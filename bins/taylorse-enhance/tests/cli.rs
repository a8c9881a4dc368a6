//! `taylorse-enhance` end to end on the bundled clips (assets/speech): `train` and a resume
//! that continues exactly, `enhance` of a file and through a pipe, `eval`, and the refusals.

#[path = "../../../tests/common/output.rs"]
mod output;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use output::{assert_bad_input, metrics, offline, ok_json, train_state};

fn assets() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../assets/speech")
}

fn tool(args: &[&str]) -> Output {
    offline(env!("CARGO_BIN_EXE_taylorse-enhance"))
        .args(args)
        .output()
        .unwrap()
}

fn train(out: &Path, steps: &str) -> Output {
    let data = assets().join("train");
    tool(&[
        "train",
        "--data",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--steps",
        steps,
        "--batch-size",
        "2",
        "--chunk-seconds",
        "0.5",
        "--valid-every",
        "2",
        "--valid-count",
        "2",
        "--checkpoint-every",
        "1",
        "--threads",
        "1",
        "--quiet",
    ])
}

fn model_tensors(path: &Path) -> Vec<(String, Vec<f32>)> {
    let ckpt = ember_core::Checkpoint::load(path, &candle_core::Device::Cpu).unwrap();
    let mut out: Vec<(String, Vec<f32>)> = ckpt
        .model_tensors()
        .map(|(k, t)| (k.clone(), t.flatten_all().unwrap().to_vec1().unwrap()))
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[test]
fn train_resume_enhance_and_eval() {
    let dir = tempfile::tempdir().unwrap();
    let full = dir.path().join("full");
    let summary = ok_json(train(&full, "4"));
    assert_eq!(summary["steps"], 4);
    assert!(summary["best_valid_si_sdr"].as_f64().unwrap().is_finite());
    assert_eq!(metrics(&full).len(), 2, "validations at steps 2 and 4");
    assert!(full.join("curves.png").is_file() && full.join("best.safetensors").is_file());
    assert_eq!(
        train_state(&full.join("last.safetensors")).unwrap()["step"],
        4
    );

    // A run stopped after 2 steps and resumed to 4 takes the same steps.
    let part = dir.path().join("part");
    ok_json(train(&part, "2"));
    let config = part.join("config.json");
    let mut saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&config).unwrap()).unwrap();
    saved["steps"] = 4.into();
    std::fs::write(&config, saved.to_string()).unwrap();
    // As if the first session had trained for 1000 s: the resumed run's time counts on.
    let records = metrics(&part);
    let mut lines = String::new();
    for mut r in records {
        r["interval_seconds"] = 1000.0.into();
        lines += &format!("{r}\n");
    }
    std::fs::write(part.join("metrics.jsonl"), lines).unwrap();
    let resumed = ok_json(tool(&[
        "train",
        "--resume",
        part.to_str().unwrap(),
        "--threads",
        "1",
        "--quiet",
    ]));
    assert_eq!(resumed["steps"], 4);
    assert_eq!(
        model_tensors(&part.join("last.safetensors")),
        model_tensors(&full.join("last.safetensors"))
    );
    let logged = metrics(&part);
    assert_eq!(logged.len(), 2);
    assert_eq!(logged[0]["interval_seconds"], 1000.0);
    let second = logged[1]["interval_seconds"].as_f64().unwrap();
    assert!(second > 0.0 && second < 1000.0, "{second}");
    assert_eq!(resumed["train_seconds"].as_f64().unwrap(), 1000.0 + second);

    // Enhance a file: 16 kHz output of the input's length, and a spectrogram.
    let input = assets().join("test/clean/it_IT_m_Carlo-dir-firstlast.wav");
    let out_dir = dir.path().join("enhanced");
    let lines = tool(&[
        "enhance",
        input.to_str().unwrap(),
        "-o",
        out_dir.to_str().unwrap(),
        "--model",
        full.to_str().unwrap(),
        "--plot",
        "--chunk-seconds",
        "1",
        "--overlap-seconds",
        "0.25",
    ]);
    let record = ok_json(lines);
    let written = ember_audio::decode_file(Path::new(record["output"].as_str().unwrap())).unwrap();
    let original = ember_audio::decode_file(&input).unwrap();
    assert_eq!(
        (written.sample_rate, written.samples.len()),
        (16_000, original.samples.len())
    );
    assert!(Path::new(record["plot"].as_str().unwrap()).is_file());

    // Through a pipe: WAV in, WAV out, nothing else on stdout.
    let mut child = offline(env!("CARGO_BIN_EXE_taylorse-enhance"))
        .args([
            "enhance",
            "-",
            "-o",
            "-",
            "--model",
            full.join("best.safetensors").to_str().unwrap(),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&std::fs::read(&input).unwrap())
        .unwrap();
    let piped = child.wait_with_output().unwrap();
    assert!(piped.status.success());
    let audio = ember_audio::decode_bytes(piped.stdout, "stdout").unwrap();
    assert_eq!(audio.samples.len(), original.samples.len());

    // Evaluate on the test clips.
    let test = assets().join("test");
    let wavs = dir.path().join("wavs");
    let report = ok_json(tool(&[
        "eval",
        "--model",
        full.to_str().unwrap(),
        "--data",
        test.to_str().unwrap(),
        "--snrs=-5,5",
        "--count",
        "2",
        "--write",
        wavs.to_str().unwrap(),
    ]));
    for snr in ["-5", "5"] {
        for kind in ["noisy", "enhanced"] {
            let stoi = report["by_snr_db"][snr][kind]["stoi"].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&stoi), "{snr} {kind}: {stoi}");
        }
    }
    assert!(wavs.join("enhanced/snr-5_1.wav").is_file() && wavs.join("mixtures.json").is_file());
    // Noisier input scores lower.
    let noisy = |snr: &str| {
        report["by_snr_db"][snr]["noisy"]["si_sdr"]
            .as_f64()
            .unwrap()
    };
    assert!(noisy("-5") < noisy("5"));
}

#[test]
fn bad_input_is_one_line_and_exit_code_2() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let missing = tool(&[
        "train",
        "--data",
        "/nonexistent",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_bad_input(&missing, "clean speech folder");
    let text = dir.path().join("notes.wav");
    std::fs::write(&text, "not audio").unwrap();
    let ckpt = dir.path().join("ckpt.safetensors");
    std::fs::write(&ckpt, "not a checkpoint").unwrap();
    let enhance = tool(&[
        "enhance",
        text.to_str().unwrap(),
        "-o",
        dir.path().to_str().unwrap(),
        "--model",
        ckpt.to_str().unwrap(),
    ]);
    assert_bad_input(&enhance, "not a valid safetensors file");
    let config = tool(&[
        "train",
        "--data",
        assets().join("train").to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--model",
        "huge",
    ]);
    assert_bad_input(&config, "unknown TaylorSENet preset");
    let snr = tool(&[
        "train",
        "--out",
        out.to_str().unwrap(),
        "--snr-min",
        "10",
        "--snr-max",
        "0",
    ]);
    assert_bad_input(&snr, "--snr-min");
}
