//! `ressl-pretrain` end to end on the bundled subset with a tiny ResNet: a run reports its
//! kNN monitor and exports a plain backbone checkpoint, a run killed mid-epoch resumes
//! exactly (queue, teacher and optimizer included), two data-parallel ranks follow one
//! process, and bad input is refused.

#[path = "../../../tests/common/output.rs"]
mod output;
#[path = "../../../tests/common/runs.rs"]
mod runs;

use std::path::Path;
use std::process::Command;

use candle_core::Device;
use ember_core::Checkpoint;
use output::{metrics, ok_json};

const NET: &str = r#"{"stem_type":"small","layers":[1,1],"channels":[4,8],"stem_width":4}"#;

fn tool() -> Command {
    output::offline(env!("CARGO_BIN_EXE_ressl-pretrain"))
}

fn args(out: &Path, extra: &[&str]) -> Vec<String> {
    runs::quick_pretrain(
        &[
            "--model-config",
            NET,
            "--dim",
            "16",
            "--hidden",
            "32",
            "--queue",
            "64",
            "--batch-size",
            "16",
        ],
        out,
        extra,
    )
}

#[test]
fn pretrains_monitors_and_exports_a_backbone() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let r = ok_json(
        tool()
            .args(args(&run, &["--epochs", "1"]))
            .output()
            .unwrap(),
    );
    assert_eq!(r["method"], "ressl");
    let knn = r["knn_top1"].as_f64().unwrap();
    assert!((0.0..=100.0).contains(&knn), "{r}");
    let m = metrics(&run);
    assert_eq!(m.len(), 1);
    for key in ["train_loss", "knn_top1", "augment_share", "images_per_s"] {
        assert!(m[0][key].is_number(), "{key} in {}", m[0]);
    }
    assert!(run.join("curves.png").exists());
    let last = Checkpoint::load(&run.join("last.safetensors"), &Device::Cpu).unwrap();
    for name in [
        "encoder_q.net.conv1.weight",
        "encoder_k.head.linear2.weight",
        "@train/pretext/queue",
    ] {
        assert!(last.tensors.contains_key(name), "{name}");
    }
    // The backbone is a plain ResNet checkpoint under the torchvision names.
    let backbone = run.join("backbone.safetensors");
    let b = Checkpoint::load(&backbone, &Device::Cpu).unwrap();
    assert_eq!(b.meta.arch, "resnet");
    assert!(b.tensors.contains_key("conv1.weight") && b.tensors.contains_key("fc.weight"));
    assert!(b.tensors.keys().all(|k| !k.starts_with("encoder")));
    let pretrained = b.meta.extra.get("pretrained").expect("ember.pretrained");
    assert!(pretrained.contains("\"ressl\""), "{pretrained}");
}

#[test]
fn a_run_killed_mid_epoch_resumes_and_matches() {
    let tmp = tempfile::tempdir().unwrap();
    let extra = [
        "--epochs",
        "2",
        "--checkpoint-steps",
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
        &["train_loss", "knn_top1"],
    );
}

#[test]
fn bad_input_is_refused_in_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    output::assert_each_refused(
        |out, extra| runs::with_args(tool(), args(out, extra)),
        tmp.path(),
        &[
            (&["--queue", "8"], "--queue"),
            (&["--mixup", "0.2"], "--mixup"),
            (&["--tau-t", "0"], "--tau-t"),
        ],
    );
}

/// Two ranks pre-train as one process does with the same global batch, not to the bit (each
/// student's batch norm sees its shard, the teacher's a shuffled share, as in the official
/// DDP runs), and every rank's keys enter the queue: its pointer moves by the global batch.
#[test]
fn two_ranks_pretrain_as_one_process_and_share_the_queue() {
    let tmp = tempfile::tempdir().unwrap();
    let run = runs::alone_and_launched(2, tmp.path(), 0.01, |out| {
        runs::with_args(tool(), args(out, &["--epochs", "1"]))
    });
    // 250 steps of 16 keys leave a queue of 64 at 32; had each rank enqueued only its 8
    // keys, it would be at 16.
    let pointers = output::queue_pointers(&run.ranks);
    eprintln!("queue pointers: {pointers:?}");
    assert!(!pointers.is_empty(), "the queue is saved");
    assert_eq!(pointers, output::queue_pointers(&run.alone));
}
