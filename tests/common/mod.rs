//! Running the `ember` binary from end-to-end tests.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod output;
#[allow(unused_imports)]
pub use output::{assert_bad_input, metrics, offline, ok_json, stdout_json, train_state};

pub const TINY_MODEL: &str =
    r#"{"stem_type":"small","layers":[1,1],"channels":[4,8],"stem_width":4}"#;

pub fn ember() -> Command {
    offline(env!("CARGO_BIN_EXE_ember"))
}

pub fn run(args: &[&str]) -> Output {
    ember().args(args).output().expect("the ember binary runs")
}

/// `ember train` of the tiny model on the bundled subset into `out`, plus `extra` flags
/// (at least `--epochs`).
pub fn tiny_train_args(out: &Path, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "train",
        "--data",
        "fashion-mnist-subset",
        "--model-config",
        TINY_MODEL,
        "--quiet",
        "--out",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.push(out.to_str().unwrap().to_string());
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

/// Runs [`tiny_train_args`] to the end and returns the JSON result.
pub fn train_tiny(out: &Path, extra: &[&str]) -> serde_json::Value {
    let result = ember()
        .args(tiny_train_args(out, extra))
        .output()
        .expect("the ember binary runs");
    assert!(
        result.status.success(),
        "training failed: {}",
        String::from_utf8_lossy(&result.stderr)
    );
    stdout_json(&result)
}

/// A checkpoint trained once for all tests of a test binary.
pub fn shared_checkpoint() -> PathBuf {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("ember-test-shared-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        train_tiny(
            &dir,
            &["--epochs", "2", "--batch-size", "64", "--lr", "0.05"],
        );
        dir
    })
    .join("best.safetensors")
}
