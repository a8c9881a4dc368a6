//! The `ember` tool end to end on the bundled data: train, eval, predict, info, the run
//! directory, Hub files from an offline cache, and a killed run resumed.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

#[test]
fn train_then_eval_predict_and_info() {
    let ckpt = shared_checkpoint();
    let dir = ckpt.parent().unwrap();
    for file in [
        "config.json",
        "metrics.jsonl",
        "summary.json",
        "last.safetensors",
        "best.safetensors",
    ] {
        assert!(dir.join(file).is_file(), "{file} missing");
    }
    assert!(std::fs::read(dir.join("curves.png"))
        .unwrap()
        .starts_with(b"\x89PNG"));
    let records = metrics(dir);
    assert_eq!(records.len(), 2);
    assert!(
        records[1]["train_loss"].as_f64() < records[0]["train_loss"].as_f64(),
        "loss falls: {records:?}"
    );

    let eval = run(&[
        "eval",
        ckpt.to_str().unwrap(),
        "--data",
        "fashion-mnist-subset",
    ]);
    assert!(
        eval.status.success(),
        "{}",
        String::from_utf8_lossy(&eval.stderr)
    );
    let eval = stdout_json(&eval);
    let best = records
        .iter()
        .map(|r| r["test_top1"].as_f64().unwrap())
        .fold(0.0, f64::max);
    assert_eq!(
        eval["top1"].as_f64().unwrap(),
        best,
        "eval of best.safetensors reproduces the best epoch"
    );
    assert_eq!(eval["images"], 1000);
    assert!(
        eval["top1"].as_f64().unwrap() > 30.0,
        "the tiny model learnt something: {eval}"
    );

    let info = stdout_json(&run(&["info", ckpt.to_str().unwrap()]));
    assert_eq!(info["arch"], "resnet");
    assert_eq!(info["labels"][9], "Ankle boot");
    assert_eq!(info["config"]["in_chans"], 1);
    assert_eq!(info["preprocess"]["height"], 28);
    assert!(info["parameters"].as_u64().unwrap() > 1000);

    // Two test images written as PNG files, as a user would have them.
    let tmp = tempfile::tempdir().unwrap();
    let ds = ember_data::FashionMnist::from_source(
        ember_data::fashion::Source::Bundled,
        ember_data::Split::Test,
    )
    .unwrap();
    let mut paths = Vec::new();
    for i in [0usize, 1] {
        let img = image::GrayImage::from_raw(28, 28, ds.image_bytes(i).to_vec()).unwrap();
        let p = tmp.path().join(format!("item{i}.png"));
        img.save(&p).unwrap();
        paths.push(p.to_str().unwrap().to_string());
    }
    let mut args = vec!["predict", ckpt.to_str().unwrap(), "--top-k", "3"];
    args.extend(paths.iter().map(String::as_str));
    let out = run(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "one JSON line per image");
    let top = lines[0]["top"].as_array().unwrap();
    assert_eq!(top.len(), 3);
    let probs: Vec<f64> = top.iter().map(|t| t["prob"].as_f64().unwrap()).collect();
    assert!(probs.windows(2).all(|w| w[0] >= w[1]) && probs.iter().sum::<f64>() <= 1.0 + 1e-6);
    assert!(ember_data::fashion::CLASSES.contains(&top[0]["label"].as_str().unwrap()));
}

#[test]
fn checkpoints_from_an_offline_hub_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let file =
        ember::ember_core::hub::HubFile::parse("hf://ember-ml/tiny-resnet@main/model.safetensors")
            .unwrap()
            .unwrap();
    let bytes = std::fs::read(shared_checkpoint()).unwrap();
    let cached =
        ember::ember_core::hub::seed_cache(&tmp.path().join("hub"), &file, "a1b2c3", &bytes)
            .unwrap();
    let hub = |args: &[&str]| {
        ember()
            .args(args)
            .env("HF_HOME", tmp.path())
            .env("HF_HUB_OFFLINE", "1")
            .output()
            .unwrap()
    };
    let info = hub(&["info", "hf://ember-ml/tiny-resnet/model.safetensors"]);
    assert!(
        info.status.success(),
        "{}",
        String::from_utf8_lossy(&info.stderr)
    );
    assert_eq!(stdout_json(&info)["arch"], "resnet");
    let pulled = stdout_json(&hub(&[
        "pull",
        "hf://ember-ml/tiny-resnet/model.safetensors",
    ]));
    assert_eq!(pulled["path"], cached.to_str().unwrap());
    assert_bad_input(
        &hub(&["pull", "hf://ember-ml/tiny-resnet/other.safetensors"]),
        "HF_HUB_OFFLINE",
    );
}

#[test]
fn a_run_killed_mid_epoch_resumes_and_matches_an_uninterrupted_run() {
    killed_run_resumes_exactly("f32", &[]);
}

/// Mixed precision resumes from the f32 master weights (and f16 from its loss scale) saved
/// with the optimizer: resuming from the bf16/f16 weights alone would drift from the
/// uninterrupted run. The f16 run also keeps a weight average (its evaluations are of the
/// average): f16 skips the steps whose gradients overflow, which leave the average alone, so
/// the checkpoint must carry the average's own update count, not the step count.
#[test]
fn a_mixed_precision_run_killed_mid_epoch_resumes_from_its_master_weights() {
    killed_run_resumes_exactly("bf16", &[]);
    killed_run_resumes_exactly("f16", &["--ema-decay", "0.9"]);
}

fn killed_run_resumes_exactly(dtype: &str, flags: &[&str]) {
    let tmp = tempfile::tempdir().unwrap();
    let (reference, killed) = (tmp.path().join("reference"), tmp.path().join("killed"));
    let extra = [
        "--epochs",
        "3",
        "--batch-size",
        "8",
        "--checkpoint-steps",
        "1",
        "--workers",
        "1",
        "--lr",
        "0.05",
        "--dtype",
        dtype,
    ];
    let extra = [&extra[..], flags].concat();
    train_tiny(&reference, &extra);

    let mut child = ember()
        .args(tiny_train_args(&killed, &extra))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let last = killed.join("last.safetensors");
    let started = Instant::now();
    let state = loop {
        if let Some(s) = train_state(&last).filter(|s| s["batch"].as_u64() > Some(0)) {
            child.kill().unwrap(); // SIGKILL: no chance to clean up
            child.wait().unwrap();
            break s;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run finished before a mid-epoch checkpoint was seen"
        );
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no mid-epoch checkpoint after 2 minutes"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let done_before = metrics(&killed).len();
    assert!(done_before < 3, "killed before the end");

    let resumed = run(&["train", "--resume", killed.to_str().unwrap()]);
    assert!(
        resumed.status.success(),
        "{}",
        String::from_utf8_lossy(&resumed.stderr)
    );
    let (a, b) = (metrics(&reference), metrics(&killed));
    assert_eq!(b.len(), 3, "epochs 1..3 each recorded once: {b:?}");
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x["epoch"], y["epoch"]);
        for key in ["train_loss", "test_loss", "test_top1", "lr"] {
            assert_eq!(
                x[key], y[key],
                "{dtype}: {key} at epoch {} after resuming from {state}",
                x["epoch"]
            );
        }
    }
}

/// The compute threads come from `--threads`, else from `RAYON_NUM_THREADS` (which `ember
/// launch` sets to each rank's share of the cores), as the results show: the kernels split
/// their work by the pool's size, so 1 and 2 threads round differently.
#[test]
fn rayon_num_threads_sizes_the_pool_as_threads_does() {
    let tmp = tempfile::tempdir().unwrap();
    let loss = |name: &str, flags: &[&str], env: Option<&str>| {
        let out = tmp.path().join(name);
        let mut command = ember();
        command.args(tiny_train_args(&out, &[&["--epochs", "1"], flags].concat()));
        match env {
            Some(n) => command.env("RAYON_NUM_THREADS", n),
            None => command.env_remove("RAYON_NUM_THREADS"),
        };
        ok_json(command.output().unwrap());
        metrics(&out)[0]["train_loss"].clone()
    };
    for n in ["1", "2"] {
        assert_eq!(
            loss(&format!("env{n}"), &[], Some(n)),
            loss(&format!("flag{n}"), &["--threads", n], None),
            "RAYON_NUM_THREADS={n} against --threads {n}"
        );
    }
}

#[test]
fn a_diverging_run_stops_and_writes_no_bad_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("diverged");
    let args = tiny_train_args(
        &out,
        &["--epochs", "1", "--lr", "1e30", "--warmup-epochs", "0"],
    );
    let result = ember().args(args).output().unwrap();
    let err = String::from_utf8_lossy(&result.stderr);
    assert_eq!(result.status.code(), Some(1), "a runtime failure: {err}");
    assert!(err.contains("training diverged at epoch 1"), "{err}");
    assert!(err.contains("no checkpoint had been written yet"), "{err}");
    assert!(!out.join("last.safetensors").exists());
    assert!(result.stdout.is_empty(), "no result line for a failed run");
}
