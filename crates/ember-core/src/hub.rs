//! Weights from a path or from the Hugging Face Hub: `hf://owner/repo[@revision]/file`.
//!
//! hf-hub 0.4 reads HF_HOME and HF_ENDPOINT only through `ApiBuilder::from_env` (plain
//! `Api::new` ignores them), and it ignores HF_HUB_OFFLINE altogether, so offline mode is a
//! cache-only lookup here: the same `refs/<revision>` -> `snapshots/<commit>/<file>` layout
//! the Python `huggingface_hub` writes, with no network call at all.

use std::path::PathBuf;

use hf_hub::api::sync::ApiBuilder;
use hf_hub::{Cache, Repo, RepoType};

use crate::error::{EmberError, Result};

/// A file in a Hub model repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubFile {
    pub repo: String,
    pub revision: String,
    pub file: String,
}

impl HubFile {
    /// Parses `hf://owner/repo[@revision]/path/in/repo`; `None` when `spec` is not a Hub
    /// address.
    pub fn parse(spec: &str) -> Result<Option<Self>> {
        let Some(rest) = spec.strip_prefix("hf://") else {
            return Ok(None);
        };
        let bad = || {
            EmberError::bad_input(format!(
                "`{spec}`: a Hub address is hf://owner/repo[@revision]/file"
            ))
        };
        let mut parts = rest.splitn(3, '/');
        let (owner, repo, file) = match (parts.next(), parts.next(), parts.next()) {
            (Some(o), Some(r), Some(f)) if !o.is_empty() && !r.is_empty() && !f.is_empty() => {
                (o, r, f)
            }
            _ => return Err(bad()),
        };
        let (repo, revision) = match repo.split_once('@') {
            Some((r, rev)) if !r.is_empty() && !rev.is_empty() => (r, rev),
            Some(_) => return Err(bad()),
            None => (repo, "main"),
        };
        Ok(Some(Self {
            repo: format!("{owner}/{repo}"),
            revision: revision.to_string(),
            file: file.to_string(),
        }))
    }

    fn hub_repo(&self) -> Repo {
        Repo::with_revision(self.repo.clone(), RepoType::Model, self.revision.clone())
    }
}

/// Where the Hub lives for this process: the cache folder, the endpoint, and whether the
/// network may be used.
#[derive(Debug, Clone)]
pub struct HubEnv {
    pub cache: PathBuf,
    pub endpoint: Option<String>,
    pub offline: bool,
}

impl HubEnv {
    /// From HF_HOME (cache at `$HF_HOME/hub`, else `~/.cache/huggingface/hub`), HF_ENDPOINT
    /// and HF_HUB_OFFLINE.
    pub fn from_env() -> Self {
        let offline = std::env::var("HF_HUB_OFFLINE")
            .map(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on"))
            .unwrap_or(false);
        Self {
            cache: Cache::from_env().path().clone(),
            endpoint: std::env::var("HF_ENDPOINT").ok(),
            offline,
        }
    }

    /// The local path of `spec`: a plain path as it is (it must exist), a Hub file from the
    /// cache, downloading it first unless offline.
    pub fn resolve(&self, spec: &str) -> Result<PathBuf> {
        match HubFile::parse(spec)? {
            Some(file) => self.fetch(&file),
            None => {
                let path = PathBuf::from(spec);
                if path.is_file() {
                    Ok(path)
                } else {
                    Err(EmberError::bad_input(format!("{spec}: no such file")))
                }
            }
        }
    }

    /// The cached copy of `file`, downloaded into the cache first when it is missing.
    pub fn fetch(&self, file: &HubFile) -> Result<PathBuf> {
        let cached = Cache::new(self.cache.clone())
            .repo(file.hub_repo())
            .get(&file.file);
        if let Some(path) = cached {
            return Ok(path);
        }
        if self.offline {
            return Err(EmberError::bad_input(format!(
                "hf://{}@{}/{} is not in the Hub cache {} and HF_HUB_OFFLINE is set",
                file.repo,
                file.revision,
                file.file,
                self.cache.display()
            )));
        }
        let mut builder = ApiBuilder::from_cache(Cache::new(self.cache.clone()))
            .with_progress(std::io::IsTerminal::is_terminal(&std::io::stderr()));
        if let Some(endpoint) = &self.endpoint {
            builder = builder.with_endpoint(endpoint.clone());
        }
        let api = builder
            .build()
            .map_err(|e| EmberError::Runtime(format!("Hub client: {e}")))?;
        api.repo(file.hub_repo()).get(&file.file).map_err(|e| {
            EmberError::Runtime(format!(
                "downloading hf://{}@{}/{}: {e}",
                file.repo, file.revision, file.file
            ))
        })
    }
}

/// Builds a Hub cache entry by hand, laid out as `huggingface_hub` does, so tests (and
/// users preparing an offline machine) need no network.
pub fn seed_cache(
    cache: &std::path::Path,
    file: &HubFile,
    commit: &str,
    bytes: &[u8],
) -> Result<PathBuf> {
    let repo_dir = cache.join(format!("models--{}", file.repo.replace('/', "--")));
    let snapshot = repo_dir.join("snapshots").join(commit).join(&file.file);
    let refs = repo_dir.join("refs").join(&file.revision);
    for dir in [snapshot.parent(), refs.parent()].into_iter().flatten() {
        std::fs::create_dir_all(dir).map_err(|e| EmberError::io(dir, e))?;
    }
    std::fs::write(&refs, commit).map_err(|e| EmberError::io(&refs, e))?;
    std::fs::write(&snapshot, bytes).map_err(|e| EmberError::io(&snapshot, e))?;
    Ok(snapshot)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hub_addresses() {
        let f = HubFile::parse("hf://ember-ml/resnet18@v1/weights/model.safetensors")
            .unwrap()
            .unwrap();
        assert_eq!(f.repo, "ember-ml/resnet18");
        assert_eq!(f.revision, "v1");
        assert_eq!(f.file, "weights/model.safetensors");
        let f = HubFile::parse("hf://a/b/c.safetensors").unwrap().unwrap();
        assert_eq!(f.revision, "main");
        assert!(HubFile::parse("runs/x/best.safetensors").unwrap().is_none());
        for bad in ["hf://a/b", "hf://a//c", "hf://a/b@/c", "hf://"] {
            assert_eq!(HubFile::parse(bad).unwrap_err().exit_code(), 2, "{bad}");
        }
    }

    #[test]
    fn offline_lookup_finds_cached_files_and_refuses_missing_ones() {
        let dir = tempfile::tempdir().unwrap();
        let env = HubEnv {
            cache: dir.path().to_path_buf(),
            endpoint: Some("http://127.0.0.1:9".into()),
            offline: true,
        };
        let file = HubFile::parse("hf://ember-ml/tiny@main/model.safetensors")
            .unwrap()
            .unwrap();
        let seeded = seed_cache(dir.path(), &file, "0123abcd", b"weights").unwrap();
        let got = env.resolve("hf://ember-ml/tiny/model.safetensors").unwrap();
        assert_eq!(got, seeded);
        assert_eq!(std::fs::read(got).unwrap(), b"weights");
        let err = env
            .resolve("hf://ember-ml/tiny/other.safetensors")
            .unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("HF_HUB_OFFLINE"), "{err}");
    }

    #[test]
    fn cached_files_need_no_network_even_online() {
        let dir = tempfile::tempdir().unwrap();
        // An endpoint nothing listens on: any request would fail.
        let env = HubEnv {
            cache: dir.path().to_path_buf(),
            endpoint: Some("http://127.0.0.1:9".into()),
            offline: false,
        };
        let file = HubFile::parse("hf://o/r@dev/w.safetensors")
            .unwrap()
            .unwrap();
        seed_cache(dir.path(), &file, "feed", b"x").unwrap();
        assert!(env.resolve("hf://o/r@dev/w.safetensors").is_ok());
        let err = env.resolve("hf://o/r@dev/missing.safetensors").unwrap_err();
        assert_eq!(
            err.exit_code(),
            1,
            "a failed download is a runtime error: {err}"
        );
    }

    #[test]
    fn plain_paths_must_exist() {
        let env = HubEnv {
            cache: PathBuf::from("/nonexistent"),
            endpoint: None,
            offline: true,
        };
        assert_eq!(
            env.resolve("/nonexistent/w.safetensors")
                .unwrap_err()
                .exit_code(),
            2
        );
    }
}
