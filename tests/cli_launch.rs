//! `ember launch`: a training run as two CPU processes (the single-process path of the
//! data-parallel engine: TCP gradient averaging instead of NCCL) trains the model one
//! process trains with the same global batch, and only rank 0 writes; failures and bad
//! input end the whole launch with one line.

#[path = "common/output.rs"]
mod output;
#[path = "common/runs.rs"]
mod runs;

use std::path::Path;
use std::process::Stdio;

use candle_core::Device;
use ember_core::Checkpoint;
use output::{assert_bad_input, metrics, offline, ok_json};
use runs::kill_mid_epoch;

/// A Swin small enough for a test, without drop path. It has no batch norm, whose
/// per-shard statistics differ from the whole batch's by design (as in PyTorch's DDP).
const TINY_VIT: &str =
    r#"{"embed_dim": 8, "depths": [1, 1, 1], "num_heads": [1, 1, 1], "drop_path_rate": 0.0}"#;

fn train_args(out: &Path) -> Vec<String> {
    [
        "train",
        "--arch",
        "swin_nano_32",
        "--image-size",
        "32",
        "--model-config",
        TINY_VIT,
        "--data",
        "fashion-mnist-subset",
        "--epochs",
        "2",
        // A short run: the two runs' rounding differences (the half-batch means average to
        // the batch mean up to the last bit) grow as any perturbation of training does.
        "--label-fraction",
        "0.15",
        "--batch-size",
        "32",
        "--workers",
        "1",
        "--threads",
        "1",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// The largest difference between the weights two runs ended with.
fn largest_weight_difference(a: &Path, b: &Path) -> f32 {
    let weights =
        |dir: &Path| Checkpoint::load(&dir.join("last.safetensors"), &Device::Cpu).unwrap();
    let (wa, wb) = (weights(a), weights(b));
    let mut worst = 0f32;
    for (name, t) in wa.model_tensors() {
        let diff = (t - &wb.tensors[name])
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap();
        worst = worst.max(diff.to_scalar::<f32>().unwrap());
    }
    worst
}

fn ember() -> std::process::Command {
    offline(env!("CARGO_BIN_EXE_ember"))
}

fn run(args: &[&str]) -> std::process::Output {
    ember().args(args).output().unwrap()
}

fn launch(nproc: usize, tail: &[String]) -> std::process::Output {
    let mut cmd = ember();
    cmd.args(["launch", "--nproc", &nproc.to_string(), "--"]);
    cmd.arg(env!("CARGO_BIN_EXE_ember")).args(tail);
    cmd.output().unwrap()
}

#[test]
fn two_processes_train_what_one_process_trains_and_only_rank_zero_writes() {
    let tmp = tempfile::tempdir().unwrap();
    let (alone, pair) = (tmp.path().join("alone"), tmp.path().join("pair"));
    let one = ok_json(ember().args(train_args(&alone)).output().unwrap());
    let out = launch(2, &train_args(&pair));
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(
        stdout.lines().count(),
        1,
        "one result line, rank 0's: {stdout}"
    );
    let two = ok_json(out);
    assert_eq!(two["run_dir"].as_str(), Some(pair.to_str().unwrap()));

    let (a, b) = (metrics(&alone), metrics(&pair));
    assert_eq!(
        b.len(),
        2,
        "each epoch recorded once (rank 0 alone writes): {b:?}"
    );
    // Each rank evaluates every other batch; the sums over both cover the test split once.
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(pair.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["final_eval"]["images"], 1000);
    for (x, y) in a.iter().zip(&b) {
        let (x, y) = (
            x["test_top1"].as_f64().unwrap(),
            y["test_top1"].as_f64().unwrap(),
        );
        assert!((x - y).abs() <= 0.1, "test top-1: alone {x}, two ranks {y}");
    }
    for (x, y) in a.iter().zip(&b) {
        for key in ["train_loss", "test_loss"] {
            let (x, y) = (x[key].as_f64().unwrap(), y[key].as_f64().unwrap());
            assert!(
                (x - y).abs() < 1e-4 * x.abs(),
                "{key}: alone {x}, two ranks {y}"
            );
        }
    }
    let worst = largest_weight_difference(&alone, &pair);
    eprintln!("largest weight difference after 2 epochs: {worst}");
    assert!(worst < 1e-5, "weights after 2 epochs differ by {worst}");
    assert!(one["best_top1"].as_f64() > Some(0.0));

    // A launch of one rank goes through the same exchange (the sum of one), exactly.
    let single = tmp.path().join("single");
    ok_json(launch(1, &train_args(&single)));
    for (x, y) in a.iter().zip(&metrics(&single)) {
        for key in ["train_loss", "test_loss", "test_top1"] {
            assert_eq!(x[key], y[key], "{key}: alone vs launched as the only rank");
        }
    }
}

/// With batch norm, two ranks normalise their own half batches (DDP's default) and train a
/// little differently from one process; with `--sync-bn` they normalise with the whole
/// batch's statistics and train what one process trains.
#[test]
fn sync_bn_makes_a_batch_norm_model_train_as_in_one_process() {
    let tmp = tempfile::tempdir().unwrap();
    let resnet = |out: &Path, extra: &[&str]| {
        let mut args = train_args(out);
        let arch = args.iter().position(|a| a == "--arch").unwrap();
        args[arch + 1] = "resnet".into();
        let config = args.iter().position(|a| a == "--model-config").unwrap();
        args[config + 1] = r#"{"layers":[1,1],"channels":[8,16],"stem_width":8}"#.into();
        // One epoch: SGD at lr 0.1 on so small a batch-norm network turns rounding-level
        // differences (the fused kernel against the synchronised composition, alone) into
        // 1e-3 of the test loss within the second.
        let epochs = args.iter().position(|a| a == "--epochs").unwrap();
        args[epochs + 1] = "1".into();
        args.extend(extra.iter().map(|a| a.to_string()));
        runs::with_args(ember(), args)
    };
    let synced = runs::alone_and_launched(2, &tmp.path().join("synced"), 1e-5, |out| {
        resnet(out, &["--sync-bn"])
    });
    let worst = largest_weight_difference(&synced.alone, &synced.ranks);
    eprintln!("--sync-bn: largest weight difference after an epoch: {worst}");
    assert!(worst < 1e-4, "weights after an epoch differ by {worst}");
    let own = tmp.path().join("own");
    let ranks = runs::run_as_ranks(2, || resnet(&own, &[]));
    runs::assert_launch_follows(&synced.alone, &own, &ranks, 0.05);
    let loss = |dir: &Path| metrics(dir)[0]["train_loss"].as_f64().unwrap();
    let drift = (loss(&own) - loss(&synced.alone)).abs() / loss(&synced.alone);
    eprintln!("without --sync-bn: train loss {drift:.2e} (relative) from one process");
    assert!(drift > 1e-3, "per-shard statistics should show");
    // As the only rank the shard is the batch: nothing is exchanged, the run is the same.
    let single = tmp.path().join("single");
    ok_json(runs::run_as_ranks(1, || resnet(&single, &["--sync-bn"])).remove(0));
    let (a, b) = (metrics(&synced.alone), metrics(&single));
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        for key in ["train_loss", "test_loss", "test_top1"] {
            assert_eq!(x[key], y[key], "{key}: alone vs launched as the only rank");
        }
    }
}

/// A launch killed outright (its ranks die with it) resumes under a new launch and ends
/// where an uninterrupted launch ends.
#[test]
fn a_killed_launch_resumes_and_matches_an_uninterrupted_one() {
    let tmp = tempfile::tempdir().unwrap();
    // The whole subset (epochs of a few seconds), checkpoints every second.
    let with_timer = |out: &Path| {
        let mut args = train_args(out);
        let fraction = args.iter().position(|a| a == "--label-fraction").unwrap();
        args.drain(fraction..fraction + 2);
        args.extend(["--checkpoint-steps".to_string(), "1".to_string()]);
        args
    };
    let (reference, killed) = (tmp.path().join("reference"), tmp.path().join("killed"));
    ok_json(launch(2, &with_timer(&reference)));
    let mut cmd = ember();
    cmd.args(["launch", "--nproc", "2", "--", env!("CARGO_BIN_EXE_ember")])
        .args(with_timer(&killed))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    kill_mid_epoch(cmd.spawn().unwrap(), &killed.join("last.safetensors"), 0);
    let resume = [
        "train".to_string(),
        "--resume".to_string(),
        killed.display().to_string(),
    ];
    ok_json(launch(2, &resume));
    let (a, b) = (metrics(&reference), metrics(&killed));
    assert_eq!(b.len(), 2, "{b:?}");
    for (x, y) in a.iter().zip(&b) {
        for key in ["train_loss", "test_loss", "test_top1", "lr"] {
            assert_eq!(x[key], y[key], "{key} at epoch {}", x["epoch"]);
        }
    }
}

#[test]
fn a_rank_that_fails_ends_the_launch_with_its_exit_code() {
    let tmp = tempfile::tempdir().unwrap();
    let mut args = train_args(&tmp.path().join("run"));
    let data = args
        .iter()
        .position(|a| a == "fashion-mnist-subset")
        .unwrap();
    args[data] = tmp.path().join("no-such-folder").display().to_string();
    let out = launch(2, &args);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("no-such-folder"));
}

#[test]
fn commands_that_run_in_one_process_refuse_to_be_launched() {
    let out = launch(2, &["info".to_string(), "x.safetensors".to_string()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("runs in one process"));
}

#[test]
fn launch_bad_input_is_one_line_and_exit_code_2() {
    assert_bad_input(
        &run(&["launch", "--nproc", "0", "--", "ember", "train"]),
        "at least 1",
    );
    // clap names the missing argument on its second line; the one line keeps it.
    assert_bad_input(&run(&["launch", "--gpus", "2"]), "<COMMAND>");
    assert_bad_input(
        &run(&["launch", "--nproc", "2", "--", "/no/such/tool"]),
        "cannot start",
    );
}
