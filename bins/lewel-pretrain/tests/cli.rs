//! `lewel-pretrain` end to end on the bundled subset with a tiny ResNet: LEWEL on both bases
//! reports its global and aligned terms, the bases alone report only the global one, a MoCo
//! run killed mid-epoch resumes exactly (queues included), two data-parallel ranks follow one
//! process, and bad input is refused.

#[path = "../../../tests/common/output.rs"]
mod output;
#[path = "../../../tests/common/runs.rs"]
mod runs;

use std::path::Path;
use std::process::Command;

use output::{metrics, ok_json};

const NET: &str = r#"{"stem_type":"small","layers":[1,1],"channels":[4,8],"stem_width":4}"#;

fn tool() -> Command {
    output::offline(env!("CARGO_BIN_EXE_lewel-pretrain"))
}

fn args(out: &Path, extra: &[&str]) -> Vec<String> {
    runs::quick_pretrain(
        &[
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
            "--epochs",
            "1",
        ],
        out,
        extra,
    )
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

/// Two ranks pre-train as one process does with the same global batch (not to the bit: batch
/// norm normalises each rank's shard, as DDP without SyncBN), and with the MoCo base every
/// rank's keys enter the queues: their pointers move by the global batch.
#[test]
fn two_ranks_pretrain_as_one_process_and_share_the_queues() {
    let tmp = tempfile::tempdir().unwrap();
    // Batch norm on shards of 8 moves LEWEL's loss by 3% against one batch of 16; on shards
    // of 32, by 0.6%. After 62 steps a queue of 192 is at 64 when it takes the global
    // batch's 128 keys a step, and would be at 128 if each rank enqueued only its own.
    let batch = ["--batch-size", "64", "--queue", "192"];
    for (name, base) in [("byol", ["--base", "byol"]), ("moco", ["--base", "moco"])] {
        let extra = [&base[..], &batch[..]].concat();
        let run = runs::alone_and_launched(2, &tmp.path().join(name), 0.02, |out| {
            runs::with_args(tool(), args(out, &extra))
        });
        let pointers = output::queue_pointers(&run.ranks);
        eprintln!("{name} queue pointers: {pointers:?}");
        assert_eq!(pointers, output::queue_pointers(&run.alone));
        assert_eq!(pointers.is_empty(), name == "byol");
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
        &["train_loss", "train_aligned", "knn_top1"],
    );
}

#[test]
fn bad_input_is_refused_in_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    output::assert_each_refused(
        |out, extra| runs::with_args(tool(), args(out, extra)),
        tmp.path(),
        &[
            (&["--heads", "3"], "heads"),
            (&["--base", "moco", "--queue", "16"], "--queue"),
            (&["--loss-weight", "2"], "--loss-weight"),
        ],
    );
}
