//! `lewel-pretrain` end to end on the bundled subset with a tiny ResNet: LEWEL on both bases
//! reports its global and aligned terms, the bases alone report only the global one, a MoCo
//! run killed mid-epoch resumes exactly (queues included), and bad input is refused.

#[path = "../../../tests/common/output.rs"]
mod output;
#[path = "../../../tests/common/runs.rs"]
mod runs;

use std::path::Path;
use std::process::Command;

use output::{assert_bad_input, metrics, ok_json};

const NET: &str = r#"{"stem_type":"small","layers":[1,1],"channels":[4,8],"stem_width":4}"#;

fn tool() -> Command {
    output::offline(env!("CARGO_BIN_EXE_lewel-pretrain"))
}

fn args(out: &Path, extra: &[&str]) -> Vec<String> {
    let mut a: Vec<String> = [
        "--preset",
        "quick",
        "--model-config",
        NET,
        "--dim",
        "8",
        "--hidden",
        "16",
        "--heads",
        "2",
        "--queue",
        "64",
        "--batch-size",
        "16",
        "--knn-bank",
        "200",
        "--epochs",
        "1",
        "--threads",
        "1",
        "--quiet",
        "--out",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    a.push(out.display().to_string());
    a.extend(extra.iter().map(|s| s.to_string()));
    a
}

#[test]
fn lewel_and_its_bases_train_on_both_bases() {
    let tmp = tempfile::tempdir().unwrap();
    for (extra, method, aligned) in [
        (vec!["--base", "byol"], "lewel-byol", true),
        (vec!["--base", "byol", "--no-align"], "byol", false),
        (
            vec!["--base", "moco", "--target-norm", "eman"],
            "lewel-moco",
            true,
        ),
        (vec!["--base", "moco", "--no-align"], "moco", false),
    ] {
        let run = tmp.path().join(method);
        let r = ok_json(tool().args(args(&run, &extra)).output().unwrap());
        assert_eq!(r["method"], method);
        let m = &metrics(&run)[0];
        assert!(m["train_global"].is_number(), "{m}");
        assert_eq!(m["train_aligned"].is_number(), aligned, "{m}");
        assert!(m["knn_top1"].as_f64().unwrap() >= 0.0);
        assert!(run.join("backbone.safetensors").exists());
    }
}

#[test]
fn a_moco_run_killed_mid_epoch_resumes_and_matches() {
    let tmp = tempfile::tempdir().unwrap();
    let extra = [
        "--base",
        "moco",
        "--epochs",
        "2",
        "--checkpoint-secs",
        "1",
        "--workers",
        "1",
        "--batch-size",
        "8",
    ];
    runs::assert_resume_matches(
        tool,
        |dir| args(dir, &extra),
        tmp.path(),
        1,
        &["train_loss", "train_aligned", "knn_top1"],
    );
}

#[test]
fn bad_input_is_refused_in_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tool()
        .args(args(&tmp.path().join("a"), &["--heads", "3"]))
        .output()
        .unwrap();
    assert_bad_input(&out, "heads");
    let out = tool()
        .args(args(
            &tmp.path().join("b"),
            &["--base", "moco", "--queue", "16"],
        ))
        .output()
        .unwrap();
    assert_bad_input(&out, "--queue");
    let out = tool()
        .args(args(&tmp.path().join("c"), &["--loss-weight", "2"]))
        .output()
        .unwrap();
    assert_bad_input(&out, "--loss-weight");
}
