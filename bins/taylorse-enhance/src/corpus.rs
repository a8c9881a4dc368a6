//! A speech corpus on disk: `DIR/clean/` (speech) and `DIR/noise/` (noise), any audio format
//! ember-audio decodes, any sample rate (resampled to 16 kHz once, when loaded).

use std::path::{Path, PathBuf};

use ember_audio::{decode_file, resample, SAMPLE_RATE};
use ember_core::{EmberError, Result};

/// Decoded 16 kHz clips with their file names.
#[derive(Debug, Clone)]
pub struct Clips {
    pub names: Vec<String>,
    pub samples: Vec<Vec<f32>>,
}

impl Clips {
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    pub fn seconds(&self) -> f64 {
        self.samples.iter().map(Vec::len).sum::<usize>() as f64 / SAMPLE_RATE as f64
    }

    /// Every `every`-th clip (from `offset`) and the rest: a held-out split by file.
    pub fn split(self, every: usize, offset: usize) -> (Clips, Clips) {
        let (mut held, mut rest) = (Clips::empty(), Clips::empty());
        for (i, (n, s)) in self.names.into_iter().zip(self.samples).enumerate() {
            let side = if every > 0 && i % every == offset % every {
                &mut held
            } else {
                &mut rest
            };
            side.names.push(n);
            side.samples.push(s);
        }
        (held, rest)
    }

    fn empty() -> Self {
        Self {
            names: Vec::new(),
            samples: Vec::new(),
        }
    }
}

/// The clean and noise clips of a corpus folder.
#[derive(Debug, Clone)]
pub struct Corpus {
    pub clean: Clips,
    pub noise: Clips,
}

impl Corpus {
    pub fn open(dir: &Path) -> Result<Self> {
        let clean = load_dir(&dir.join("clean"), "clean speech")?;
        let noise = load_dir(&dir.join("noise"), "noise")?;
        Ok(Self { clean, noise })
    }
}

/// The audio files of `dir` (sorted by name), decoded and resampled to 16 kHz. Files that are
/// not audio are an error naming the file.
pub fn load_dir(dir: &Path, what: &str) -> Result<Clips> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        EmberError::bad_input(format!("{}: cannot read the {what} folder ({e}); a corpus is DIR/clean/ and DIR/noise/ (scripts/setup_speech.sh builds one)", dir.display()))
    })?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && !is_hidden(p))
        .collect();
    paths.sort();
    if paths.is_empty() {
        return Err(EmberError::bad_input(format!(
            "{}: no {what} files",
            dir.display()
        )));
    }
    let mut clips = Clips::empty();
    for path in paths {
        let audio = decode_file(&path)?;
        let samples = resample(&audio.samples, audio.sample_rate, SAMPLE_RATE)?;
        clips.names.push(
            path.file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned(),
        );
        clips.samples.push(samples);
    }
    Ok(clips)
}

fn is_hidden(path: &Path) -> bool {
    path.file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with('.'))
}
