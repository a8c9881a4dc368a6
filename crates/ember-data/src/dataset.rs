//! What every dataset offers the loader: random access to labelled images.

use ember_core::{EmberError, Result};

use crate::sample::Chw;

/// A label set in one line for error messages: its size and first names.
pub fn describe_classes(names: &[String]) -> String {
    let shown: Vec<&str> = names.iter().take(3).map(String::as_str).collect();
    format!("{} classes ({}, ...)", names.len(), shown.join(", "))
}

/// A labelled image dataset. `get` may decode from disk, so it is called on loader threads.
pub trait Dataset: Send + Sync {
    fn len(&self) -> usize;

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The image (values in [0, 1]) and class index of item `index`.
    fn get(&self, index: usize) -> Result<(Chw, u32)>;

    /// The class index of item `index`, without decoding its image.
    fn label(&self, index: usize) -> Result<u32> {
        Ok(self.get(index)?.1)
    }

    /// Whether items carry a class per pixel ([`Dataset::get_dense`]), for segmentation.
    fn dense(&self) -> bool {
        false
    }

    /// The image, its image-level label and the class of each of its pixels (row-major
    /// `[h, w]`), for datasets that are [`Dataset::dense`].
    fn get_dense(&self, index: usize) -> Result<(Chw, u32, Vec<u32>)> {
        let _ = index;
        Err(EmberError::bad_input(format!(
            "{} has a label per image, not per pixel (segmentation needs e.g. --data fashion-seg)",
            self.source()
        )))
    }

    /// Class names, indexed by label.
    fn classes(&self) -> &[String];

    /// `[channels, height, width]` of every item.
    fn image_dims(&self) -> [usize; 3];

    /// Where the data came from, for the user.
    fn source(&self) -> String;
}

/// Which part of a dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    Train,
    Test,
}

impl Split {
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Test => "test",
        }
    }
}
