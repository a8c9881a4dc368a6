//! `dyrep-train` end to end on the bundled subset with a tiny ResNet: DyRep grows (and the
//! structure rides in the checkpoints), `deploy` folds the result into the plain network
//! with the same outputs, RepVGG-style training builds blocks everywhere, a run killed after
//! a structure change resumes exactly, and bad input is refused.

#[path = "../../../tests/common/output.rs"]
mod output;
#[path = "../../../tests/common/runs.rs"]
mod runs;

use std::path::Path;
use std::process::{Command, Output};

use candle_core::Device;
use ember_core::Checkpoint;
use output::{assert_bad_input, metrics, stdout_json};
use serde_json::Value;

const NET: &str = r#"{"stem_type":"small","layers":[1,1],"channels":[4,8],"stem_width":4}"#;

fn tool() -> Command {
    output::offline(env!("CARGO_BIN_EXE_dyrep-train"))
}

fn train_args(out: &Path, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "--model-config",
        NET,
        "--data",
        "fashion-mnist-subset",
        "--threads",
        "1",
        "--quiet",
        "--lr",
        "0.05",
        "--out",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.push(out.display().to_string());
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

fn ok(out: Output) -> Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout_json(&out)
}

fn config(ckpt: &Path) -> Value {
    Checkpoint::load(ckpt, &Device::Cpu).unwrap().meta.config
}

fn deploy(ckpt: &Path, out: &Path) -> Value {
    ok(tool()
        .args([
            "deploy",
            ckpt.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
        .output()
        .unwrap())
}

/// The deployed checkpoint is the plain network: no plan, no block weights, and the same
/// outputs as the trained one (the tool checks that on a random batch).
fn assert_plain_deploy(report: &Value, deployed: &Path) {
    let diff = report["max_abs_diff"].as_f64().unwrap();
    assert!(diff < 1e-4, "deployed outputs differ by {diff}");
    assert!(!report["folded"].as_array().unwrap().is_empty(), "{report}");
    let ckpt = Checkpoint::load(deployed, &Device::Cpu).unwrap();
    assert!(
        ckpt.meta.config.get("rep").is_none(),
        "{}",
        ckpt.meta.config
    );
    assert!(
        ckpt.tensors.keys().all(|k| !k.contains("dbb")),
        "block weights left"
    );
}

#[test]
fn dyrep_grows_records_its_structure_and_deploys_to_the_plain_network() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let result = ok(tool()
        .args(train_args(
            &run,
            &[
                "--epochs",
                "2",
                "--batch-size",
                "64",
                "--max-adjust-epoch",
                "2",
                "--recal-iters",
                "2",
            ],
        ))
        .output()
        .unwrap());
    assert_eq!(result["mode"], "dyrep");
    assert!(run.join("structure.png").exists());
    let m = metrics(&run);
    let grown = m[0]["rep_grown"]
        .as_str()
        .expect("a slot grew after epoch 1")
        .to_string();
    assert!(
        m[0]["rep_branches"][&grown].as_u64().unwrap() > 1,
        "{}",
        m[0]
    );
    let plan = &config(&run.join("last.safetensors"))["rep"];
    assert!(
        plan[&grown].is_array(),
        "the grown slot is in the saved config: {plan}"
    );

    let deployed = tmp.path().join("deployed.safetensors");
    let report = deploy(&run.join("last.safetensors"), &deployed);
    assert_plain_deploy(&report, &deployed);
}

#[test]
fn repvgg_mode_trains_blocks_on_every_growable_conv() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    ok(tool()
        .args(train_args(
            &run,
            &["--epochs", "1", "--batch-size", "128", "--mode", "repvgg"],
        ))
        .output()
        .unwrap());
    let plan = config(&run.join("best.safetensors"))["rep"].clone();
    let slots = [
        "conv1",
        "layer1.0.conv1",
        "layer1.0.conv2",
        "layer2.0.conv1",
        "layer2.0.conv2",
    ];
    for s in slots {
        assert_eq!(
            plan[s],
            serde_json::json!([1, 0, 0, 1, 0, 0, 1]),
            "{s} in {plan}"
        );
    }
    assert!(
        plan.get("layer2.0.downsample.0").is_none(),
        "1x1 convs stay plain"
    );
    assert!(
        metrics(&run)[0].get("rep_branches").is_none(),
        "no evolution in repvgg mode"
    );
    let deployed = tmp.path().join("deployed.safetensors");
    assert_plain_deploy(&deploy(&run.join("best.safetensors"), &deployed), &deployed);
}

#[test]
fn a_run_killed_after_a_structure_change_resumes_and_matches() {
    let tmp = tempfile::tempdir().unwrap();
    let extra = [
        "--epochs",
        "3",
        "--batch-size",
        "4",
        "--checkpoint-steps",
        "1",
        "--workers",
        "1",
        "--max-adjust-epoch",
        "3",
        "--recal-iters",
        "2",
    ];
    // Killed mid-epoch 2 or 3: after a growth, with importance records under way.
    runs::assert_resume_matches(
        tool,
        |dir| train_args(dir, &extra),
        tmp.path(),
        1,
        &["train_loss", "test_top1", "rep_grown", "rep_plan"],
    );
}

#[test]
fn bad_input_is_refused_in_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tool()
        .args([
            "--arch",
            "lightvit_nano_32",
            "--image-size",
            "32",
            "--data",
            "fashion-mnist-subset",
            "--epochs",
            "1",
            "--out",
        ])
        .arg(tmp.path().join("vit"))
        .output()
        .unwrap();
    assert_bad_input(&out, "no re-parameterisable convolutions");
    let out = tool()
        .args(train_args(&tmp.path().join("b"), &["--branches", "[1,1]"]))
        .output()
        .unwrap();
    assert_bad_input(&out, "--branches");
    let out = tool()
        .args(["deploy", "/nonexistent.safetensors", "--out"])
        .arg(tmp.path().join("d.safetensors"))
        .output()
        .unwrap();
    assert_bad_input(&out, "nonexistent");
}
