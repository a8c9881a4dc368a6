//! Driving a tool's run in end-to-end tests: kill it once it has written a mid-epoch
//! checkpoint, so `--resume` can be checked against an uninterrupted run, and run it as the
//! ranks of a launch beside one process. Shared by the tool crates' tests (included by path,
//! next to `output.rs`).

#![allow(dead_code)]

use std::ffi::OsStr;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::output::{assert_success, metrics, ok_json, stdout_json, train_state};

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

/// Runs `n` copies of `command()` as the ranks of one launch, started the way `ember launch`
/// (or torchrun) starts them: `RANK`, `LOCAL_RANK`, `WORLD_SIZE` and a free local port. Their
/// outputs, by rank.
pub fn run_as_ranks(n: usize, command: impl Fn() -> Command) -> Vec<Output> {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let ranks: Vec<Child> = (0..n)
        .map(|rank| {
            command()
                .env("RANK", rank.to_string())
                .env("LOCAL_RANK", rank.to_string())
                .env("WORLD_SIZE", n.to_string())
                .env("MASTER_ADDR", "127.0.0.1")
                .env("MASTER_PORT", port.to_string())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    ranks
        .into_iter()
        .map(|rank| rank.wait_with_output().unwrap())
        .collect()
}

/// The ranks of a launch that wrote `pair` (from [`run_as_ranks`]) against the same run in
/// one process that wrote `alone`: every rank succeeded, only rank 0 printed a result, each
/// epoch was recorded once, and the epochs' training losses agree to `tolerance`
/// (relative). Rank 0's result.
pub fn assert_launch_follows(alone: &Path, pair: &Path, ranks: &[Output], tolerance: f64) -> Value {
    ranks.iter().for_each(assert_success);
    assert!(
        ranks[1..].iter().all(|r| r.stdout.is_empty()),
        "only rank 0 prints its result"
    );
    let (a, b) = (metrics(alone), metrics(pair));
    assert_eq!(a.len(), b.len(), "each epoch recorded once: {b:?}");
    for (x, y) in a.iter().zip(&b) {
        let (x, y) = (
            x["train_loss"].as_f64().unwrap(),
            y["train_loss"].as_f64().unwrap(),
        );
        eprintln!("train loss: one process {x}, {} ranks {y}", ranks.len());
        assert!(
            (x - y).abs() < tolerance * x,
            "train loss: one process {x}, {} ranks {y}",
            ranks.len()
        );
    }
    stdout_json(&ranks[0])
}

/// One run in one process (in `dir/alone`) and as `n` ranks of a launch (in `dir/ranks`),
/// checked with [`assert_launch_follows`].
pub struct Launched {
    pub alone: PathBuf,
    pub ranks: PathBuf,
    /// The one-process run's result.
    pub one: Value,
    /// Rank 0's result.
    pub launched: Value,
}

/// Runs `run(out)` (the whole command for an output folder) alone and as `n` ranks, and
/// checks that the launch follows the one-process run to `tolerance`.
pub fn alone_and_launched(
    n: usize,
    dir: &Path,
    tolerance: f64,
    run: impl Fn(&Path) -> Command,
) -> Launched {
    let (alone, ranks) = (dir.join("alone"), dir.join("ranks"));
    let one = ok_json(run(&alone).output().unwrap());
    let outputs = run_as_ranks(n, || run(&ranks));
    let launched = assert_launch_follows(&alone, &ranks, &outputs, tolerance);
    Launched {
        alone,
        ranks,
        one,
        launched,
    }
}

/// `command` with `args` appended (a `Command` built in one expression).
pub fn with_args<S: AsRef<OsStr>>(
    mut command: Command,
    args: impl IntoIterator<Item = S>,
) -> Command {
    command.args(args);
    command
}

/// A pre-training tool's command line for the tests: its quick preset, then `flags`, a kNN
/// bank of 200 images, one thread, no progress, the run folder `out`, then `extra`.
pub fn quick_pretrain(flags: &[&str], out: &Path, extra: &[&str]) -> Vec<String> {
    let head = ["--preset", "quick"];
    let tail = ["--knn-bank", "200", "--threads", "1", "--quiet", "--out"];
    let mut a: Vec<String> = head
        .iter()
        .chain(flags)
        .chain(&tail)
        .map(|s| s.to_string())
        .collect();
    a.push(out.display().to_string());
    a.extend(extra.iter().map(|s| s.to_string()));
    a
}
