//! `maskd-distill` end to end on tiny FashionSeg canvases with tiny ResNet backbones: a
//! teacher trained by the tool itself (`--loss none`), stage 1 (tokens, resumed from its
//! saved flags alone), the mask picture, stage 2 with every term, live and cached teacher
//! logits giving the same run, distillation as two data-parallel ranks, and the refusals.

#[path = "../../../tests/common/output.rs"]
mod output;
#[path = "../../../tests/common/runs.rs"]
mod runs;

use std::path::Path;
use std::process::{Command, Output};

use output::{assert_bad_input, offline, ok_json};
use runs::{alone_and_launched, with_args};
use serde_json::Value;

/// Small canvases of small items: a few seconds per command on one thread.
const DATA: &str = "fashion-seg:size=32,train=48,test=16,scale=0.5-1";
/// Backbones with the ImageNet stem, so their first stage is at the decoder's stride 4.
const TEACHER: &str = r#"{"layers":[1,1],"channels":[8,16],"stem_width":8}"#;
const STUDENT: &str = r#"{"layers":[1,1],"channels":[4,8],"stem_width":4}"#;

fn command() -> Command {
    offline(env!("CARGO_BIN_EXE_maskd-distill"))
}

fn tool(args: &[&str]) -> Output {
    command().args(args).output().unwrap()
}

/// One epoch of stage 2 for a `config` backbone into `out`, with `extra` flags.
fn distil(out: &Path, config: &str, extra: &[&str]) -> Output {
    tool(&distil_args(out, config, extra))
}

fn distil_args<'a>(out: &'a Path, config: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "distill",
        "--student",
        "resnet",
        "--student-config",
        config,
        "--data",
        DATA,
        "--epochs",
        "1",
        "--batch-size",
        "16",
        "--threads",
        "1",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend(extra);
    args
}

fn tokens(out: &Path, teacher: &str) -> Output {
    tool(&[
        "tokens",
        "--teacher",
        teacher,
        "--data",
        DATA,
        "--iterations",
        "4",
        "--batch-size",
        "8",
        "--eval-images",
        "8",
        "--threads",
        "1",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ])
}

fn teacher(dir: &Path) -> String {
    let s = ok_json(distil(&dir.join("teacher"), TEACHER, &["--loss", "none"]));
    assert_eq!(s["command"], "maskd-distill distill");
    assert!(s["test_miou"].as_f64().is_some(), "{s}");
    s["checkpoint"].as_str().unwrap().to_string()
}

fn finite(x: &Value) -> bool {
    x.as_f64().is_some_and(f64::is_finite)
}

#[test]
fn learns_tokens_draws_masks_and_distils_with_every_term() {
    let tmp = tempfile::tempdir().unwrap();
    let teacher = teacher(tmp.path());

    let stage1 = tmp.path().join("tokens");
    let t = ok_json(tokens(&stage1, &teacher));
    for key in [
        "dice_before",
        "dice_after",
        "teacher_miou",
        "masked_miou_after",
    ] {
        assert!(finite(&t[key]), "{key} in {t}");
    }
    let tokens_file = t["tokens_file"].as_str().unwrap().to_string();
    assert!(Path::new(&tokens_file).is_file());
    // A finished stage 1 resumed from its folder alone ends where it ended.
    let resumed = ok_json(tool(&[
        "tokens",
        "--resume",
        stage1.to_str().unwrap(),
        "--quiet",
    ]));
    assert_eq!(resumed["dice_after"], t["dice_after"]);

    let png = tmp.path().join("masks.png");
    let m = ok_json(tool(&[
        "masks",
        "--teacher",
        &teacher,
        "--tokens",
        &tokens_file,
        "--data",
        DATA,
        "--count",
        "2",
        "--out",
        png.to_str().unwrap(),
    ]));
    assert!(finite(&m["mean_pairwise_dice"]) && png.is_file(), "{m}");

    let with_teacher = ["--teacher", teacher.as_str()];
    let live = ok_json(distil(
        &tmp.path().join("live"),
        STUDENT,
        &[&with_teacher[..], &["--tokens", &tokens_file]].concat(),
    ));
    assert_eq!(live["loss"], "maskd");
    let cached = ok_json(distil(
        &tmp.path().join("cached"),
        STUDENT,
        &[
            &with_teacher[..],
            &["--tokens", &tokens_file, "--cache-teacher"],
        ]
        .concat(),
    ));
    assert_eq!(cached["cache_teacher"], true);
    assert_eq!(
        (cached["test_loss"].as_f64(), cached["test_miou"].as_f64()),
        (live["test_loss"].as_f64(), live["test_miou"].as_f64()),
        "cached teacher logits are the live ones, by dataset index"
    );

    for loss in ["kd", "dist", "mse"] {
        let dir = tmp.path().join(loss);
        let s = ok_json(distil(
            &dir,
            STUDENT,
            &[&with_teacher[..], &["--loss", loss, "--cache-teacher"]].concat(),
        ));
        assert_eq!(s["loss"], loss);
        let metrics = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap();
        let record: Value = serde_json::from_str(metrics.lines().last().unwrap()).unwrap();
        assert!(
            finite(&record["train_ce"]) && finite(&record[format!("train_{loss}")]),
            "{record}"
        );
    }
}

#[test]
fn refuses_what_cannot_be_distilled() {
    let tmp = tempfile::tempdir().unwrap();
    let out_dir = tmp.path().join("refused");
    assert_bad_input(
        &distil(&out_dir, STUDENT, &["--loss", "kd"]),
        "needs --teacher",
    );
    assert_bad_input(
        &tool(&[
            "distill",
            "--student",
            "resnet",
            "--student-config",
            STUDENT,
            "--data",
            "fashion-mnist-subset",
            "--loss",
            "none",
            "--out",
            out_dir.to_str().unwrap(),
        ]),
        "per pixel",
    );
    assert_bad_input(
        &tokens(&out_dir, "missing.safetensors"),
        "missing.safetensors",
    );
    assert!(!out_dir.exists(), "nothing written for a refused run");

    let teacher = teacher(tmp.path());
    assert_bad_input(
        &distil(&out_dir, STUDENT, &["--teacher", &teacher]),
        "--tokens",
    );
    assert_bad_input(
        &distil(
            &out_dir,
            STUDENT,
            &["--teacher", &teacher, "--loss", "kd", "--kd-weight=-1"],
        ),
        "--kd-weight",
    );
}

/// Stage 2 as two ranks of a launch: rank 0 alone prints and writes, the teacher's sharded
/// evaluation is the one-process evaluation exactly, and training follows the one-process
/// run (not to the bit: each rank's batch norm sees its half of the batch, as in DDP).
#[test]
fn distils_as_two_data_parallel_ranks() {
    let tmp = tempfile::tempdir().unwrap();
    let teacher = teacher(tmp.path());
    let extra = ["--teacher", teacher.as_str(), "--loss", "kd"];
    let run = alone_and_launched(2, &tmp.path().join("student"), 0.01, |out| {
        with_args(command(), distil_args(out, STUDENT, &extra))
    });
    assert_eq!(run.launched["teacher_miou"], run.one["teacher_miou"]);
    // A rank of a launch cannot learn tokens: that loop runs in one process.
    let out = command()
        .args(["tokens", "--teacher", &teacher, "--data", DATA])
        .args(["--out", tmp.path().join("tokens").to_str().unwrap()])
        .env("WORLD_SIZE", "2")
        .env("RANK", "0")
        .output()
        .unwrap();
    assert_bad_input(&out, "runs in one process");
}
