//! Running a tool and reading its output in end-to-end tests: the tool kept off the network,
//! the JSON result line on stdout, the one-line bad-input error, and a run directory's
//! metrics and checkpoint state. Shared by the tool crates' tests (included by path).

#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

/// The binary `bin`, unable to reach the network or a user's Hub cache.
pub fn offline(bin: &str) -> Command {
    let mut cmd = Command::new(bin);
    cmd.env("HF_HUB_OFFLINE", "1")
        .env("HF_HOME", std::env::temp_dir().join("ember-tests-no-hub"));
    cmd
}

/// The records of a run directory's `metrics.jsonl` (none before the file exists).
pub fn metrics(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// A checkpoint's `ember.train_state`, when the file can be read.
pub fn train_state(ckpt: &Path) -> Option<Value> {
    let ckpt = ember_core::Checkpoint::load(ckpt, &candle_core::Device::Cpu).ok()?;
    serde_json::from_str(ckpt.meta.extra.get("train_state")?).ok()
}

/// The queue pointers (`*queue_ptr`) saved in a run's `last.safetensors`, by name.
pub fn queue_pointers(run: &Path) -> Vec<(String, i64)> {
    let last =
        ember_core::Checkpoint::load(&run.join("last.safetensors"), &candle_core::Device::Cpu)
            .unwrap();
    let mut pointers: Vec<(String, i64)> = last
        .tensors
        .iter()
        .filter(|(name, _)| name.ends_with("queue_ptr"))
        .map(|(name, t)| {
            (
                name.clone(),
                t.flatten_all().unwrap().to_vec1::<i64>().unwrap()[0],
            )
        })
        .collect();
    pointers.sort();
    pointers
}

/// The JSON result of a run that must have succeeded (its stderr shown if not).
pub fn ok_json(out: Output) -> Value {
    assert_success(&out);
    stdout_json(&out)
}

/// Asserts that a command succeeded, showing its stderr if not.
pub fn assert_success(out: &Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn stdout_json(out: &Output) -> serde_json::Value {
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().last().unwrap_or_else(|| {
        panic!(
            "no stdout; stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    serde_json::from_str(line).unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {text}"))
}

/// Asserts a bad-input failure: exit code 2 and exactly one line on stderr, containing
/// `needle`.
pub fn assert_bad_input(out: &Output, needle: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "exit code; stderr: {err}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line on stderr, got: {err}");
    assert!(lines[0].starts_with("error: "), "{err}");
    assert!(lines[0].contains(needle), "`{needle}` not in: {err}");
    assert!(
        !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
        "{err}"
    );
}

/// Runs `command(out, extra)` for each `(extra, needle)` of `cases`, each into its own folder
/// under `dir`, and asserts each is refused in one line naming `needle` ([`assert_bad_input`]).
pub fn assert_each_refused(
    command: impl Fn(&Path, &[&str]) -> Command,
    dir: &Path,
    cases: &[(&[&str], &str)],
) {
    for (i, (extra, needle)) in cases.iter().enumerate() {
        let out = command(&dir.join(format!("refused-{i}")), extra)
            .output()
            .unwrap();
        assert_bad_input(&out, needle);
    }
}
