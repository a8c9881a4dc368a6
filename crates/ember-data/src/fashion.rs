//! Fashion-MNIST (Xiao et al. 2017): 60k train and 10k test 28x28 grey images, 10 classes.
//!
//! Found, in order, in `$EMBER_DATA` (or `$EMBER_DATA/fashion-mnist`), in
//! `/usr/share/datasets/fashion-mnist` (Debian's `dataset-fashion-mnist`), and else in the
//! stratified subset compiled into the binary (`assets/fashion-mnist-subset`, 400 train
//! and 100 test images per class), so the tools run on a machine with nothing installed.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ember_core::{EmberError, Result};

use crate::dataset::{Dataset, Split};
use crate::idx::IdxArray;
use crate::sample::Chw;

pub const CLASSES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

/// Per-channel mean and standard deviation of the training images, for normalisation.
pub const MEAN: [f32; 1] = [0.2860];
pub const STD: [f32; 1] = [0.3530];

pub const DEBIAN_DIR: &str = "/usr/share/datasets/fashion-mnist";

const BUNDLED: [(&str, &[u8]); 4] = [
    (
        "train-images",
        include_bytes!("../../../assets/fashion-mnist-subset/train-images-idx3-ubyte.gz"),
    ),
    (
        "train-labels",
        include_bytes!("../../../assets/fashion-mnist-subset/train-labels-idx1-ubyte.gz"),
    ),
    (
        "t10k-images",
        include_bytes!("../../../assets/fashion-mnist-subset/t10k-images-idx3-ubyte.gz"),
    ),
    (
        "t10k-labels",
        include_bytes!("../../../assets/fashion-mnist-subset/t10k-labels-idx1-ubyte.gz"),
    ),
];

/// Where a copy of the dataset was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Dir(PathBuf),
    Bundled,
}

/// One split of Fashion-MNIST, held in memory as bytes.
pub struct FashionMnist {
    images: Arc<Vec<u8>>,
    labels: Vec<u32>,
    classes: Vec<String>,
    source: Source,
    split: Split,
}

fn prefix(split: Split) -> &'static str {
    match split {
        Split::Train => "train",
        Split::Test => "t10k",
    }
}

fn has_files(dir: &Path) -> bool {
    ["train", "t10k"].iter().all(|p| {
        ["images-idx3-ubyte", "labels-idx1-ubyte"].iter().all(|f| {
            dir.join(format!("{p}-{f}")).is_file() || dir.join(format!("{p}-{f}.gz")).is_file()
        })
    })
}

/// The first place that holds all four files: `$EMBER_DATA`, Debian's folder, the bundle.
pub fn locate() -> Source {
    let mut dirs = Vec::new();
    if let Some(root) = std::env::var_os("EMBER_DATA") {
        let root = PathBuf::from(root);
        dirs.push(root.join("fashion-mnist"));
        dirs.push(root);
    }
    dirs.push(PathBuf::from(DEBIAN_DIR));
    dirs.into_iter()
        .find(|d| has_files(d))
        .map(Source::Dir)
        .unwrap_or(Source::Bundled)
}

impl FashionMnist {
    /// Loads `split` from the first source [`locate`] finds.
    pub fn load(split: Split) -> Result<Self> {
        Self::from_source(locate(), split)
    }

    pub fn from_source(source: Source, split: Split) -> Result<Self> {
        let p = prefix(split);
        let (images, labels) = match &source {
            Source::Dir(dir) => {
                let file = |kind: &str| {
                    let plain = dir.join(format!("{p}-{kind}"));
                    let gz = dir.join(format!("{p}-{kind}.gz"));
                    IdxArray::read(if gz.is_file() { &gz } else { &plain })
                };
                (file("images-idx3-ubyte")?, file("labels-idx1-ubyte")?)
            }
            Source::Bundled => {
                let get = |kind: &str| {
                    let name = format!("{p}-{kind}");
                    let bytes = BUNDLED.iter().find(|(n, _)| *n == name).map(|(_, b)| *b);
                    IdxArray::from_bytes(bytes.expect("every bundled split is compiled in"))
                        .map_err(|e| EmberError::Runtime(format!("bundled {name}: {e}")))
                };
                (get("images")?, get("labels")?)
            }
        };
        let n = labels.dims.first().copied().unwrap_or(0);
        if images.dims != [n, 28, 28] || labels.dims.len() != 1 {
            return Err(EmberError::bad_input(format!(
                "Fashion-MNIST {} in {}: images {:?} and labels {:?} do not match [n, 28, 28] and [n]",
                split.name(),
                describe(&source),
                images.dims,
                labels.dims
            )));
        }
        if let Some(bad) = labels.data.iter().find(|&&l| l as usize >= CLASSES.len()) {
            return Err(EmberError::bad_input(format!(
                "Fashion-MNIST {} in {}: label {bad} is not one of the 10 classes",
                split.name(),
                describe(&source)
            )));
        }
        Ok(Self {
            images: Arc::new(images.data),
            labels: labels.data.iter().map(|&l| l as u32).collect(),
            classes: CLASSES.iter().map(|c| c.to_string()).collect(),
            source,
            split,
        })
    }

    pub fn labels(&self) -> &[u32] {
        &self.labels
    }

    pub fn image_bytes(&self, index: usize) -> &[u8] {
        &self.images[index * 784..(index + 1) * 784]
    }

    pub fn source_kind(&self) -> &Source {
        &self.source
    }
}

fn describe(source: &Source) -> String {
    match source {
        Source::Dir(d) => d.display().to_string(),
        Source::Bundled => "the bundled subset (assets/fashion-mnist-subset)".into(),
    }
}

impl Dataset for FashionMnist {
    fn len(&self) -> usize {
        self.labels.len()
    }

    fn get(&self, index: usize) -> Result<(Chw, u32)> {
        Ok((
            Chw::from_u8(1, 28, 28, self.image_bytes(index)),
            self.labels[index],
        ))
    }

    fn classes(&self) -> &[String] {
        &self.classes
    }

    fn image_dims(&self) -> [usize; 3] {
        [1, 28, 28]
    }

    fn source(&self) -> String {
        format!(
            "Fashion-MNIST {} ({} images) from {}",
            self.split.name(),
            self.len(),
            describe(&self.source)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundled_subset_is_stratified() {
        for (split, per_class) in [(Split::Train, 400), (Split::Test, 100)] {
            let ds = FashionMnist::from_source(Source::Bundled, split).unwrap();
            assert_eq!(ds.len(), 10 * per_class);
            for class in 0..10u32 {
                let n = ds.labels().iter().filter(|&&l| l == class).count();
                assert_eq!(n, per_class, "class {class} in {split:?}");
            }
            let (img, _) = ds.get(0).unwrap();
            assert_eq!(img.dims(), [1, 28, 28]);
            assert!(img.data.iter().any(|&v| v > 0.5));
        }
    }

    #[test]
    fn a_folder_with_a_bad_file_is_bad_input() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "train-images-idx3-ubyte",
            "train-labels-idx1-ubyte",
            "t10k-images-idx3-ubyte",
            "t10k-labels-idx1-ubyte",
        ] {
            std::fs::write(dir.path().join(name), b"garbage").unwrap();
        }
        assert!(has_files(dir.path()));
        let err = FashionMnist::from_source(Source::Dir(dir.path().into()), Split::Test)
            .err()
            .unwrap();
        assert_eq!(err.exit_code(), 2);
    }
}
