//! `lightvit-train` end to end on the bundled subset with a tiny LightViT: presets and
//! overrides, the checkpoint it writes, fine-tuning from it (also through an offline Hub
//! cache), and bad input.

#[path = "../../../tests/common/output.rs"]
mod output;

use std::path::Path;
use std::process::Output;

use candle_core::Device;
use ember_core::hub::{seed_cache, HubFile};
use ember_core::Checkpoint;
use serde_json::Value;

/// A LightViT small enough for a test: 3 blocks, widths 8-16-32.
const TINY: &str = r#"{"embed_dims": [8, 16, 32], "num_heads": [1, 1, 1], "num_layers": [1, 1, 1], "neck_dim": 32}"#;

fn tool(args: &[&str], env: &[(&str, &Path)]) -> Output {
    let mut cmd = output::offline(env!("CARGO_BIN_EXE_lightvit-train"));
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn summary(out: &Output) -> Value {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "failed: {stderr}");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {stderr}"))
}

/// One epoch of the quick preset into `out`, with `extra` flags.
fn quick(out: &Path, extra: &[&str], env: &[(&str, &Path)]) -> Output {
    let dir = out.display().to_string();
    let mut args = vec![
        "--preset", "quick", "--epochs", "1", "--quiet", "--out", &dir,
    ];
    args.extend(extra);
    tool(&args, env)
}

#[test]
fn trains_with_a_preset_and_fine_tunes_from_its_checkpoint_and_the_hub() {
    let tmp = tempfile::tempdir().unwrap();
    let first = tmp.path().join("first");
    let s = summary(&quick(
        &first,
        &["--model-config", TINY, "--drop-path", "0.05"],
        &[],
    ));
    assert_eq!(s["command"], "lightvit-train");
    assert_eq!(s["preset"], "quick");
    assert_eq!(s["epochs"], 1, "--epochs overrides the preset's 2");
    let ckpt_path = first.join("best.safetensors");
    let ckpt = Checkpoint::load(&ckpt_path, &Device::Cpu).unwrap();
    assert_eq!(ckpt.meta.arch, "lightvit");
    assert_eq!(
        ckpt.meta.config["embed_dims"],
        serde_json::json!([8, 16, 32])
    );
    assert_eq!(ckpt.meta.config["drop_path_rate"], 0.05);
    assert_eq!(ckpt.meta.config["in_chans"], 1);
    // The recorded command line has the preset written out.
    let config: Value =
        serde_json::from_str(&std::fs::read_to_string(first.join("config.json")).unwrap()).unwrap();
    let argv: Vec<&str> = config["argv"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        argv.windows(2).any(|w| w == ["--arch", "lightvit_nano_32"]),
        "{argv:?}"
    );
    // Resuming the finished run re-parses that command line: same run, same preset.
    let dir = first.display().to_string();
    let resumed = summary(&tool(&["--resume", &dir, "--quiet"], &[]));
    assert_eq!(resumed["preset"], "quick");
    assert_eq!(resumed["epochs"], 1);
    assert_eq!(resumed["run_dir"], s["run_dir"]);

    // Fine-tune from the file: its config (widths 8-16-32) is the model's.
    let second = tmp.path().join("second");
    let init = ckpt_path.display().to_string();
    let out = quick(&second, &["--init", &init], &[]);
    let s = summary(&out);
    assert!(String::from_utf8_lossy(&out.stderr).contains("init: weights from"));
    let tuned =
        Checkpoint::load(Path::new(s["checkpoint"].as_str().unwrap()), &Device::Cpu).unwrap();
    assert_eq!(
        tuned.meta.config["embed_dims"],
        serde_json::json!([8, 16, 32])
    );

    // The same through an offline Hub cache.
    let file = HubFile::parse("hf://ember-ml/tiny-lightvit@main/model.safetensors")
        .unwrap()
        .unwrap();
    seed_cache(
        &tmp.path().join("hub"),
        &file,
        "c0ffee",
        &std::fs::read(&ckpt_path).unwrap(),
    )
    .unwrap();
    let hub_init = ["--init", "hf://ember-ml/tiny-lightvit/model.safetensors"];
    let out = quick(
        &tmp.path().join("third"),
        &hub_init,
        &[("HF_HOME", tmp.path())],
    );
    summary(&out);
}

#[test]
fn bad_input_is_one_line_and_exit_code_2() {
    let tmp = tempfile::tempdir().unwrap();
    let out_dir = tmp.path().join("run");
    for (args, needle) in [
        (vec!["--arch", "resnet18"], "lightvit-train trains LightViT"),
        (vec!["--preset", "cifar"], "invalid value 'cifar'"),
        (
            vec!["--init", "/nonexistent.safetensors"],
            "/nonexistent.safetensors",
        ),
        (vec!["--image-size", "28"], "does not split into"),
    ] {
        let out = quick(&out_dir, &args, &[]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{args:?}: {stderr}");
    }
}
