//! `dist-distill` end to end on the bundled subset with tiny ResNets: a teacher trained by
//! the tool itself (`--loss ce`), distillation with DIST and KD, live and cached teacher
//! logits giving the same run, the metadata the student records, resume from the saved
//! flags, and the refusals.

#[path = "../../../tests/common/output.rs"]
mod output;

use std::path::Path;
use std::process::Output;

use candle_core::{DType, Device};
use ember_core::Checkpoint;
use output::{assert_bad_input, offline, ok_json};
use serde_json::Value;

const TEACHER: &str =
    r#"{"stem_type":"small","layers":[1,1,1,1],"channels":[8,8,16,16],"stem_width":8}"#;
const STUDENT: &str = r#"{"stem_type":"small","layers":[1,1],"channels":[4,8],"stem_width":4}"#;

fn tool(args: &[&str]) -> Output {
    offline(env!("CARGO_BIN_EXE_dist-distill"))
        .args(args)
        .output()
        .unwrap()
}

/// One epoch of `arch_config` on the subset into `out` with `extra` flags.
fn distil(out: &Path, config: &str, extra: &[&str]) -> Output {
    let dir = out.display().to_string();
    let mut args = vec![
        "--student",
        "resnet",
        "--student-config",
        config,
        "--data",
        "fashion-mnist-subset",
        "--epochs",
        "1",
        "--threads",
        "1",
        "--quiet",
        "--out",
        &dir,
    ];
    args.extend(extra);
    tool(&args)
}

fn teacher(dir: &Path) -> (String, Value) {
    let s = ok_json(distil(&dir.join("teacher"), TEACHER, &["--loss", "ce"]));
    (s["checkpoint"].as_str().unwrap().to_string(), s)
}

#[test]
fn distils_from_a_teacher_records_it_and_caching_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (ckpt, t) = teacher(tmp.path());
    assert_eq!(t["loss"], "ce");
    let fixed = [
        "--teacher",
        ckpt.as_str(),
        "--crop-padding",
        "0",
        "--no-flip",
    ];

    let live = ok_json(distil(&tmp.path().join("live"), STUDENT, &fixed));
    assert_eq!(live["command"], "dist-distill");
    assert_eq!(
        (live["loss"].as_str(), live["kd_weight"].as_f64()),
        (Some("dist"), Some(2.0))
    );
    assert_eq!(live["teacher_arch"], "resnet");
    // The teacher is measured on the same test set the teacher run reported.
    assert_eq!(live["teacher_top1"], t["test_top1"]);

    let mut cached_flags = fixed.to_vec();
    cached_flags.push("--cache-teacher");
    let cached = ok_json(distil(&tmp.path().join("cached"), STUDENT, &cached_flags));
    assert_eq!(cached["cache_teacher"], true);
    assert_eq!(
        (cached["test_loss"].as_f64(), cached["test_top1"].as_f64()),
        (live["test_loss"].as_f64(), live["test_top1"].as_f64()),
        "cached teacher logits are the live ones, by dataset index"
    );

    let student = Checkpoint::load(
        Path::new(live["checkpoint"].as_str().unwrap()),
        &Device::Cpu,
    )
    .unwrap();
    let distill: Value = serde_json::from_str(&student.meta.extra["distill"]).unwrap();
    assert_eq!(
        (distill["teacher"].as_str(), distill["loss"].as_str()),
        (Some(ckpt.as_str()), Some("dist"))
    );
    ember_models::load_checkpoint(
        Path::new(live["checkpoint"].as_str().unwrap()),
        &Device::Cpu,
        DType::F32,
        None,
    )
    .expect("a normal checkpoint");
    let metrics = std::fs::read_to_string(tmp.path().join("live/metrics.jsonl")).unwrap();
    let record: Value = serde_json::from_str(metrics.lines().last().unwrap()).unwrap();
    for part in ["train_ce", "train_dist"] {
        assert!(
            record[part].as_f64().is_some_and(f64::is_finite),
            "{part} in {record}"
        );
    }

    // KD with its defaults, resumed from the saved flags alone.
    let kd_dir = tmp.path().join("kd");
    let kd = ok_json(distil(
        &kd_dir,
        STUDENT,
        &["--teacher", ckpt.as_str(), "--loss", "kd"],
    ));
    assert_eq!(
        (kd["ce_weight"].as_f64(), kd["tau"].as_f64()),
        (Some(0.9), Some(4.0))
    );
    let resumed = ok_json(tool(&["--resume", kd_dir.to_str().unwrap(), "--quiet"]));
    assert_eq!(
        (resumed["loss"].as_str(), resumed["teacher"].as_str()),
        (Some("kd"), Some(ckpt.as_str()))
    );
    assert_eq!(resumed["test_top1"], kd["test_top1"]);
}

#[test]
fn refuses_a_teacher_for_other_labels_or_inputs_and_impossible_flags() {
    let tmp = tempfile::tempdir().unwrap();
    let (ckpt, _) = teacher(tmp.path());
    let mut other = Checkpoint::load(Path::new(&ckpt), &Device::Cpu).unwrap();
    other.meta.labels[0] = "Top".into();
    let relabelled = tmp.path().join("relabelled.safetensors");
    Checkpoint::save(
        &relabelled,
        &other.meta,
        other.tensors.iter().map(|(k, t)| (k.as_str(), t)),
    )
    .unwrap();

    let out_dir = tmp.path().join("refused");
    let relabelled = relabelled.display().to_string();
    assert_bad_input(
        &distil(&out_dir, STUDENT, &["--teacher", &relabelled]),
        "trained on the student's labels",
    );
    assert!(!out_dir.exists(), "nothing written for a refused run");
    assert_bad_input(
        &distil(
            &out_dir,
            STUDENT,
            &["--teacher", &ckpt, "--image-size", "32"],
        ),
        "--image-size",
    );
    assert_bad_input(
        &distil(&out_dir, STUDENT, &["--teacher", &ckpt, "--cache-teacher"]),
        "--no-flip",
    );
    assert_bad_input(&distil(&out_dir, STUDENT, &[]), "needs --teacher");
    assert_bad_input(
        &distil(&out_dir, STUDENT, &["--teacher", "missing.safetensors"]),
        "missing.safetensors",
    );
    assert_bad_input(&tool(&["--data", "fashion-mnist-subset"]), "--student");
    assert!(!out_dir.exists());
}
