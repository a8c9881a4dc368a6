//! Driving a tool's run in end-to-end tests: kill it once it has written a mid-epoch
//! checkpoint, so `--resume` can be checked against an uninterrupted run. Shared by the
//! tool crates' tests (included by path, next to `output.rs`).

#![allow(dead_code)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::output::{metrics, ok_json, train_state};

/// Waits until `last` (a run's `last.safetensors`) records a position mid-epoch at epoch
/// `epoch` or later, then kills `child`. Fails if the run ends first or takes minutes.
pub fn kill_mid_epoch(mut child: Child, last: &Path, epoch: u64) {
    let started = Instant::now();
    loop {
        if train_state(last)
            .is_some_and(|s| s["epoch"].as_u64() >= Some(epoch) && s["batch"].as_u64() > Some(0))
        {
            child.kill().unwrap();
            child.wait().unwrap();
            return;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run finished before it was killed"
        );
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "no mid-epoch checkpoint in epoch {}",
            epoch + 1
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `args(reference)` to the end, and `args(killed)` killed mid-epoch `epoch + 1` then
/// resumed; both runs must record the same `keys` every epoch.
pub fn assert_resume_matches(
    tool: impl Fn() -> Command,
    args: impl Fn(&Path) -> Vec<String>,
    dir: &Path,
    epoch: u64,
    keys: &[&str],
) {
    let (reference, killed) = (dir.join("reference"), dir.join("killed"));
    ok_json(tool().args(args(&reference)).output().unwrap());
    let child = tool()
        .args(args(&killed))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    kill_mid_epoch(child, &killed.join("last.safetensors"), epoch);
    ok_json(
        tool()
            .args(["--resume", killed.to_str().unwrap(), "--quiet"])
            .output()
            .unwrap(),
    );
    let (a, b) = (metrics(&reference), metrics(&killed));
    assert_eq!(a.len(), b.len(), "{b:?}");
    for (x, y) in a.iter().zip(&b) {
        for key in keys {
            assert_eq!(x[*key], y[*key], "{key} at epoch {}", x["epoch"]);
        }
    }
}
