//! `bcnet-search` end to end: `train` of tiny supernets on the bundled subset (BCNet,
//! BCNetV2's enlarged layers, the left-only baseline; resume), `bench` against
//! Channel-Bench-Macro (when its files are here: `$EMBER_CBM_DIR`, default
//! `../shared/benchmarks/channel-bench-macro`), and the refusals.

#[path = "../../../tests/common/output.rs"]
mod output;
#[path = "../../../tests/common/runs.rs"]
mod runs;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use output::{assert_bad_input, offline, ok_json};
use runs::{alone_and_launched, with_args};

fn command() -> Command {
    let mut cmd = offline(env!("CARGO_BIN_EXE_bcnet-search"));
    cmd.env_remove("EMBER_CBM_DIR");
    cmd
}

fn tool(args: &[&str]) -> Output {
    command().args(args).output().unwrap()
}

fn benchmark() -> Option<PathBuf> {
    let dir = std::env::var_os("EMBER_CBM_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../../shared/benchmarks/channel-bench-macro")
        });
    let found = dir.join("Results_ResNet.json").is_file();
    if !found {
        eprintln!("bcnet-search: no benchmark at {}; skipped", dir.display());
    }
    found.then_some(dir)
}

#[test]
fn bench_searches_the_benchmark_and_ranks_recorded_scores() {
    let Some(dir) = benchmark() else { return };
    let dir = dir.to_str().unwrap();
    let r = ok_json(tool(&[
        "bench",
        "--benchmark",
        dir,
        "--family",
        "resnet",
        "--budget",
        "0.5",
        "--seeds",
        "3",
    ]));
    let row = &r["results"][0];
    assert_eq!(
        (row["family"].as_str(), row["budget"].as_f64()),
        (Some("ResNet"), Some(0.5))
    );
    assert_eq!(row["window"], 3419);
    for method in ["evolution", "random_search"] {
        let regret = row[method]["median_regret"].as_f64().unwrap();
        assert!((0.0..1.0).contains(&regret), "{row}");
    }

    let scores = format!("{dir}/supernet_scores/bin20_min1_autoslim_3_resnet.json");
    let r = ok_json(tool(&[
        "bench",
        "--benchmark",
        dir,
        "--family",
        "resnet",
        "--scores",
        &scores,
    ]));
    let kendall = r["results"][0]["kendall"].as_f64().unwrap();
    assert!((kendall - 0.656).abs() < 1e-3, "{r}");
}

/// One epoch of a tiny MobileNet supernet (widths 8) on 512 subset images into `out`.
fn train(out: &Path, extra: &[&str]) -> Output {
    tool(&train_args(out, extra))
}

fn train_args<'a>(out: &'a Path, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "train",
        "--arch",
        "cbm_mobilenet_small",
        "--model-config",
        r#"{"widths": [8, 8, 8, 8, 8, 8, 8]}"#,
        "--data",
        "fashion-mnist-subset",
        "--epochs",
        "1",
        "--batch-size",
        "64",
        "--knn-bank",
        "256",
        "--threads",
        "1",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend(extra);
    args
}

/// The supernet trains as two data-parallel ranks (each step's sub-network drawn alike on
/// both) and follows the one-process run; its batch norm sees each rank's half batch, as in
/// DDP, so not to the bit.
#[test]
fn trains_a_supernet_as_two_ranks() {
    let tmp = tempfile::tempdir().unwrap();
    let run = alone_and_launched(2, tmp.path(), 0.01, |out| {
        with_args(command(), train_args(out, &["--bins", "4"]))
    });
    assert_eq!(run.launched["coupling"], "bc");
    // Searching with the supernet runs in one process.
    let out = command()
        .args(["search", "--supernet", run.ranks.to_str().unwrap()])
        .env("WORLD_SIZE", "2")
        .env("RANK", "0")
        .output()
        .unwrap();
    assert_bad_input(&out, "runs in one process");
}

#[test]
fn trains_supernets_and_resumes_them() {
    let tmp = tempfile::tempdir().unwrap();
    let bc = tmp.path().join("bc");
    let r = ok_json(train(&bc, &["--bins", "4"]));
    assert_eq!(
        (r["method"].as_str(), r["coupling"].as_str()),
        (Some("bcnet"), Some("bc"))
    );
    let metrics = std::fs::read_to_string(bc.join("metrics.jsonl")).unwrap();
    let record: serde_json::Value = serde_json::from_str(metrics.lines().last().unwrap()).unwrap();
    assert!(
        record["train_left"].is_f64() && record["train_right"].is_f64(),
        "{record}"
    );
    // The finished run resumed from its folder alone reports the same.
    let again = ok_json(tool(&[
        "train",
        "--resume",
        bc.to_str().unwrap(),
        "--quiet",
    ]));
    assert_eq!(again["knn_top1"], r["knn_top1"]);

    // BCNetV2: K = 4, m = 2 stores 6 bins of 2 channels per layer.
    let v2 = ok_json(train(
        &tmp.path().join("v2"),
        &["--bins", "4", "--min-bins", "2"],
    ));
    let backbone = v2["backbone"].as_str().unwrap();
    let ckpt =
        ember_core::Checkpoint::load(Path::new(backbone), &candle_core::Device::Cpu).unwrap();
    assert_eq!(
        ckpt.meta.config["widths"],
        serde_json::json!([12, 12, 12, 12, 12, 12, 12])
    );

    let ua = ok_json(train(
        &tmp.path().join("ua"),
        &["--bins", "4", "--coupling", "ua"],
    ));
    assert_eq!(ua["coupling"], "ua");

    // Scoring and searching with the BCNet supernet, given as its run folder (so the search
    // draws from BCNet's prior, fitted to the run's loss records).
    let supernet = bc.to_str().unwrap().to_string();
    let using = |cmd: &str, extra: &[&str]| {
        let mut args = vec![
            cmd,
            "--supernet",
            supernet.as_str(),
            "--data",
            "fashion-mnist-subset",
            "--holdout",
            "256",
            "--calibration-batches",
            "2",
            "--threads",
            "1",
        ];
        args.extend(extra);
        tool(&args)
    };
    let scored = using("score", &["--widths", "4,4,4,4,4,4,4", "--random", "1"]);
    assert!(
        scored.status.success(),
        "{}",
        String::from_utf8_lossy(&scored.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&scored.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["widths"], serde_json::json!([8, 8, 8, 8, 8, 8, 8]));
    assert!((0.0..=100.0).contains(&lines[0]["score"].as_f64().unwrap()));

    let out = tmp.path().join("search");
    let search = [
        "--flops-ratio",
        "0.5",
        "--population",
        "4",
        "--generations",
        "2",
        "--top-k",
        "2",
        "--out",
        out.to_str().unwrap(),
    ];
    let found = ok_json(using("search", &search));
    let macs = found["best"]["macs"].as_f64().unwrap();
    let budget = found["budget_macs"].as_f64().unwrap();
    assert!(macs <= budget && macs >= 0.8 * budget, "{found}");
    let prior = found["prior"]
        .as_array()
        .expect("a prior from the run's records");
    assert_eq!(prior.len(), 7);
    // Run again, the recorded evaluations replay the same search without scoring anything.
    let again = using("search", &search);
    assert!(String::from_utf8_lossy(&again.stderr).contains("continuing"));
    assert_eq!(ok_json(again)["best"], found["best"]);
    // The winner is a model config the registry builds (what `ember train --arch cbm
    // --model-config arch.json` trains).
    let arch: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("arch.json")).unwrap()).unwrap();
    assert_eq!(arch["widths"], found["best"]["widths"]);
    let vars = candle_nn::VarMap::new();
    let vb = candle_nn::VarBuilder::from_varmap(
        &vars,
        candle_core::DType::F32,
        &candle_core::Device::Cpu,
    );
    assert!(ember_models::build("cbm", &arch, vb).is_ok());
}

#[test]
fn uniform_scaling_fills_the_budget() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("uniform.json");
    let r = ok_json(tool(&[
        "uniform",
        "--flops-ratio",
        "0.5",
        "-o",
        file.to_str().unwrap(),
    ]));
    let (macs, budget) = (
        r["macs"].as_f64().unwrap(),
        r["budget_macs"].as_f64().unwrap(),
    );
    assert!(macs <= budget && macs > 0.98 * budget, "{r}");
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(cfg["widths"], r["widths"]);
    assert_bad_input(
        &tool(&["uniform", "--arch", "resnet", "--flops-ratio", "0.5"]),
        "--arch resnet",
    );
}

#[test]
fn refuses_impossible_settings() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("refused");
    assert_bad_input(
        &tool(&["train", "--data", "fashion-mnist-subset"]),
        "--arch resnet",
    );
    assert_bad_input(&train(&out, &["--bins", "3"]), "does not split into 3 bins");
    assert_bad_input(
        &train(&out, &["--bins", "4", "--min-bins", "5"]),
        "min bins",
    );
    assert!(!out.exists());
    assert_bad_input(&tool(&["bench"]), "--benchmark DIR");
    let missing = tool(&["bench", "--benchmark", "/nonexistent"]);
    assert_bad_input(&missing, "/nonexistent");
    assert_bad_input(
        &tool(&["bench", "--benchmark", "/tmp", "--budget", "1.5"]),
        "--budget 1.5",
    );
    assert_bad_input(
        &tool(&["bench", "--benchmark", "/tmp", "--scores", "s.json"]),
        "--family",
    );
}
