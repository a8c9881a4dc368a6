//! A run directory: `config.json` (what was asked), `metrics.jsonl` (one JSON object per
//! epoch, appended as the run goes), `summary.json` (the outcome), `curves.png`, and the
//! checkpoints `last.safetensors` / `best.safetensors`.
//!
//! In a data-parallel run only rank 0 writes: on the other ranks every write is skipped
//! (they hold the same weights and read the folder only to resume).

use std::io::Write;
use std::path::{Path, PathBuf};

use candle_core::Tensor;
use serde_json::Value;

use crate::atomic::write_atomic;
use crate::checkpoint::{Checkpoint, CheckpointMeta};
use crate::error::{EmberError, Result};
use crate::plot::Panel;

#[derive(Debug, Clone)]
pub struct RunDir {
    root: PathBuf,
    /// False on the ranks other than 0 of a data-parallel run.
    writes: bool,
}

pub const METRICS: &str = "metrics.jsonl";

impl RunDir {
    /// A new run in `root`, created if needed; a folder that already holds a run is refused
    /// (resume it instead) so that no result is overwritten by accident.
    pub fn create(root: &Path) -> Result<Self> {
        let dir = Self {
            root: root.to_path_buf(),
            writes: crate::dist::world().is_primary(),
        };
        if !dir.writes {
            return Ok(dir);
        }
        if dir.file("last.safetensors").exists() || dir.file(METRICS).exists() {
            return Err(EmberError::bad_input(format!(
                "{} already holds a run: continue it with --resume {0}, or choose another --out",
                root.display()
            )));
        }
        std::fs::create_dir_all(root).map_err(|e| EmberError::io(root, e))?;
        Ok(dir)
    }

    /// An existing run, to resume.
    pub fn open(root: &Path) -> Result<Self> {
        let dir = Self {
            root: root.to_path_buf(),
            writes: crate::dist::world().is_primary(),
        };
        if !dir.file("config.json").is_file() {
            return Err(EmberError::bad_input(format!(
                "{}: not a run directory (no config.json)",
                root.display()
            )));
        }
        Ok(dir)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// The path of `name` for a file this process should write: `None` on the ranks of a
    /// data-parallel run that do not write (what the tools' own images go through).
    pub fn to_write(&self, name: &str) -> Option<PathBuf> {
        self.writes.then(|| self.file(name))
    }

    /// Writes checkpoint `name` (atomically), on the writing rank.
    pub fn save_checkpoint<'a>(
        &self,
        name: &str,
        meta: &CheckpointMeta,
        tensors: impl Iterator<Item = (&'a str, &'a Tensor)>,
    ) -> Result<()> {
        if !self.writes {
            return Ok(());
        }
        Checkpoint::save(&self.file(name), meta, tensors)
    }

    /// Draws `panels` into the PNG `name`, on the writing rank.
    pub fn draw_curves(&self, name: &str, panels: &[Panel]) -> Result<()> {
        if !self.writes {
            return Ok(());
        }
        crate::plot::draw_curves(&self.file(name), panels)
    }

    pub fn write_json(&self, name: &str, value: &Value) -> Result<()> {
        if !self.writes {
            return Ok(());
        }
        let text = serde_json::to_string_pretty(value).expect("JSON values serialise");
        write_atomic(&self.file(name), format!("{text}\n").as_bytes())
    }

    pub fn read_json(&self, name: &str) -> Result<Value> {
        let path = self.file(name);
        let text = std::fs::read_to_string(&path).map_err(|e| EmberError::io(&path, e))?;
        serde_json::from_str(&text)
            .map_err(|e| EmberError::bad_input(format!("{}: not JSON ({e})", path.display())))
    }

    /// Appends one record to `metrics.jsonl`.
    pub fn append_metrics(&self, record: &Value) -> Result<()> {
        if !self.writes {
            return Ok(());
        }
        let path = self.file(METRICS);
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| EmberError::io(&path, e))?;
        writeln!(file, "{record}").map_err(|e| EmberError::io(&path, e))
    }

    /// Every record of `metrics.jsonl` (none if it does not exist yet); a torn last line
    /// (the process was killed while appending) is dropped.
    pub fn read_metrics(&self) -> Result<Vec<Value>> {
        let path = self.file(METRICS);
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok(text
                .lines()
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(EmberError::io(&path, e)),
        }
    }

    /// Rewrites `metrics.jsonl` with only the records `keep` accepts (on resume, the epochs
    /// the checkpoint had not reached are dropped, since they are run again).
    pub fn retain_metrics(&self, keep: impl Fn(&Value) -> bool) -> Result<Vec<Value>> {
        let kept: Vec<Value> = self
            .read_metrics()?
            .into_iter()
            .filter(|r| keep(r))
            .collect();
        if !self.writes {
            return Ok(kept);
        }
        let text: String = kept.iter().map(|r| format!("{r}\n")).collect();
        write_atomic(&self.file(METRICS), text.as_bytes())?;
        Ok(kept)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn metrics_append_read_and_retain() {
        let tmp = tempfile::tempdir().unwrap();
        let run = RunDir::create(&tmp.path().join("run")).unwrap();
        run.write_json("config.json", &json!({"lr": 0.1})).unwrap();
        for e in 0..3 {
            run.append_metrics(&json!({"epoch": e})).unwrap();
        }
        // a torn line from a killed process
        std::fs::OpenOptions::new()
            .append(true)
            .open(run.file(METRICS))
            .unwrap()
            .write_all(b"{\"epo")
            .unwrap();
        assert_eq!(run.read_metrics().unwrap().len(), 3);
        let kept = run
            .retain_metrics(|r| r["epoch"].as_u64() < Some(2))
            .unwrap();
        assert_eq!(kept.len(), 2);
        assert_eq!(run.read_metrics().unwrap().len(), 2);
        assert_eq!(
            RunDir::open(run.root())
                .unwrap()
                .read_json("config.json")
                .unwrap()["lr"],
            0.1
        );
        let again = RunDir::create(run.root()).unwrap_err();
        assert!(again.to_string().contains("--resume"), "{again}");
        assert_eq!(
            RunDir::open(&tmp.path().join("nope"))
                .unwrap_err()
                .exit_code(),
            2
        );
    }
}
