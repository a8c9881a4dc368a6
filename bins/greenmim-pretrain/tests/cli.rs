//! `greenmim-pretrain` end to end on the bundled subset with a tiny Swin: both methods train,
//! monitor and export a plain Swin checkpoint that a classifier loads, GreenMIM writes its
//! reconstruction grid, a run killed mid-epoch resumes exactly (the per-step masks
//! included), and bad input is refused.

#[path = "../../../tests/common/output.rs"]
mod output;
#[path = "../../../tests/common/runs.rs"]
mod runs;

use std::path::Path;
use std::process::Command;

use candle_core::{DType, Device};
use ember_core::{Checkpoint, SeededVarMap};
use output::{metrics, ok_json};
use runs::{alone_and_launched, with_args};

/// Swin for 16 px images: patch 2, two stages (8 and 4 tokens a side), windows of 2;
/// 4 px mask units, 4 of 16 visible at ratio 0.75.
const NET: &str = r#"{"img_size":16,"patch_size":2,"embed_dim":8,"depths":[2,2],"num_heads":[2,2],"window_size":2,"drop_path_rate":0.0,"norm_eps":1e-6}"#;

fn tool() -> Command {
    output::offline(env!("CARGO_BIN_EXE_greenmim-pretrain"))
}

fn args(out: &Path, extra: &[&str]) -> Vec<String> {
    runs::quick_pretrain(
        &[
            "--arch",
            "swin",
            "--model-config",
            NET,
            "--image-size",
            "16",
            "--decoder-dim",
            "16",
            "--decoder-heads",
            "2",
            "--batch-size",
            "16",
        ],
        out,
        extra,
    )
}

#[test]
fn both_methods_pretrain_and_export_a_plain_swin() {
    let tmp = tempfile::tempdir().unwrap();
    for method in ["greenmim", "simmim"] {
        let run = tmp.path().join(method);
        let r = ok_json(
            tool()
                .args(args(&run, &["--epochs", "1", "--method", method]))
                .output()
                .unwrap(),
        );
        assert_eq!(r["method"], method);
        let m = metrics(&run);
        assert_eq!(m.len(), 1);
        for key in ["train_loss", "knn_top1", "images_per_s"] {
            assert!(m[0][key].is_number(), "{key} in {}", m[0]);
        }
        assert!(run.join("reconstruction-epoch001.png").exists());
        // The encoder alone, under Swin's own names, loads into a Swin classifier.
        let b = Checkpoint::load(&run.join("backbone.safetensors"), &Device::Cpu).unwrap();
        assert_eq!(b.meta.arch, "swin");
        assert!(b.tensors.contains_key("patch_embed.proj.weight"));
        assert!(b.tensors.keys().all(|k| !k.starts_with("encoder")
            && !k.contains("token")
            && !k.starts_with("decoder")));
        let vars = SeededVarMap::new(0);
        let model = ember_models::build(
            "swin",
            &b.meta.config,
            vars.var_builder(DType::F32, &Device::Cpu),
        )
        .unwrap();
        ember_models::load_pretrained(vars.vars(), &b.tensors, model.head_prefix(), "backbone")
            .unwrap();
    }
}

/// Two ranks started as torchrun (or `ember launch`) starts them pre-train what one process
/// pre-trains with the same global batch, and only rank 0 writes.
#[test]
fn two_ranks_pretrain_what_one_process_pretrains() {
    let tmp = tempfile::tempdir().unwrap();
    // One short epoch: the two runs' rounding differences grow as any perturbation does.
    let extra = ["--epochs", "1", "--grid-every", "0", "--batch-size", "64"];
    let run = alone_and_launched(2, tmp.path(), 1e-4, |out| {
        with_args(tool(), args(out, &extra))
    });
    let load =
        |dir: &Path| Checkpoint::load(&dir.join("backbone.safetensors"), &Device::Cpu).unwrap();
    let (wa, wb) = (load(&run.alone), load(&run.ranks));
    let mut worst = 0f32;
    for (name, t) in &wa.tensors {
        let d = (t - &wb.tensors[name])
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap();
        worst = worst.max(d.to_scalar::<f32>().unwrap());
    }
    // AdamW divides each update by the gradient's running RMS, so where a gradient is
    // near 0 the ranks' rounding differences move a weight by up to the step size (the
    // quick preset's lr 1e-3, lower in warm-up); 62 steps differ by 1.0e-4 at most.
    assert!(worst < 1e-3, "backbones differ by {worst}");
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
        "--grid-every",
        "0",
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
            (&["--arch", "resnet", "--model-config", "{}"], "Swin"),
            (&["--mask-ratio", "0.99"], "mask_ratio"),
            (&["--label-fraction", "0.1"], "--label-fraction"),
            (&["--image-size", "20"], "16x16"),
        ],
    );
}
