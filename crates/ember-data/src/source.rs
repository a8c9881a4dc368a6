//! `--data` values: `fashion-mnist` (first found of `$EMBER_DATA`, Debian's package, the
//! bundled subset), `fashion-mnist-subset` (the bundled subset, always),
//! `fashion-seg[:key=value,...]` (segmentation canvases of Fashion-MNIST items, see
//! [`crate::fashion_seg`]), or a folder of
//! images: `DIR/train/<class>/*` with `DIR/test/` (or `DIR/val/`), or just `DIR/<class>/*`,
//! of which every tenth image per class is held out for evaluation.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use ember_core::{EmberError, Result};

use crate::dataset::{Dataset, Split};
use crate::fashion::{self, FashionMnist};
use crate::fashion_seg::{CanvasSpec, FashionSeg};
use crate::folder::ImageFolder;
use crate::sample::Chw;

#[derive(Debug, Clone, PartialEq)]
pub enum DataSource {
    FashionMnist,
    FashionMnistSubset,
    FashionSeg(CanvasSpec),
    Folder(PathBuf),
}

const FASHION_SEG: &str = "fashion-seg";

impl FromStr for DataSource {
    type Err = EmberError;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "fashion-mnist" => Ok(Self::FashionMnist),
            "fashion-mnist-subset" => Ok(Self::FashionMnistSubset),
            FASHION_SEG => Ok(Self::FashionSeg(CanvasSpec::default())),
            _ if s.starts_with(&format!("{FASHION_SEG}:")) => Ok(Self::FashionSeg(
                CanvasSpec::parse(&s[FASHION_SEG.len() + 1..])?,
            )),
            path => {
                let p = PathBuf::from(path);
                if p.is_dir() {
                    Ok(Self::Folder(p))
                } else {
                    Err(EmberError::bad_input(format!(
                        "data directory {path} does not exist (--data takes fashion-mnist, fashion-mnist-subset, fashion-seg[:options] or a folder of images)"
                    )))
                }
            }
        }
    }
}

/// A train and a test split with what preprocessing needs to know about them.
pub struct OpenedData {
    pub train: Arc<dyn Dataset>,
    pub test: Arc<dyn Dataset>,
    pub classes: Vec<String>,
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

/// Opens `source`; folder images become `channels x size x size`.
pub fn open(source: &DataSource, channels: usize, size: usize) -> Result<OpenedData> {
    let (train, test): (Arc<dyn Dataset>, Arc<dyn Dataset>) = match source {
        DataSource::FashionMnist | DataSource::FashionMnistSubset => {
            let origin = match source {
                DataSource::FashionMnist => fashion::locate(),
                _ => fashion::Source::Bundled,
            };
            (
                Arc::new(FashionMnist::from_source(origin.clone(), Split::Train)?),
                Arc::new(FashionMnist::from_source(origin, Split::Test)?),
            )
        }
        DataSource::FashionSeg(spec) => {
            let items = |split| -> Result<Arc<dyn Dataset>> {
                let items = FashionMnist::from_source(fashion::locate(), split)?;
                Ok(Arc::new(FashionSeg::new(
                    Arc::new(items),
                    split,
                    spec.clone(),
                )))
            };
            (items(Split::Train)?, items(Split::Test)?)
        }
        DataSource::Folder(dir) => open_folder(dir, channels, size)?,
    };
    let (mean, std) = match source {
        DataSource::Folder(_) if channels == 3 => {
            (vec![0.485, 0.456, 0.406], vec![0.229, 0.224, 0.225])
        }
        DataSource::Folder(_) => (vec![0.5; channels], vec![0.5; channels]),
        _ => (fashion::MEAN.to_vec(), fashion::STD.to_vec()),
    };
    if train.classes() != test.classes() {
        return Err(EmberError::bad_input(format!(
            "train classes {:?} differ from test classes {:?}",
            train.classes(),
            test.classes()
        )));
    }
    Ok(OpenedData {
        classes: train.classes().to_vec(),
        train,
        test,
        mean,
        std,
    })
}

fn open_folder(
    dir: &Path,
    channels: usize,
    size: usize,
) -> Result<(Arc<dyn Dataset>, Arc<dyn Dataset>)> {
    let split_dir = |names: &[&str]| names.iter().map(|n| dir.join(n)).find(|p| p.is_dir());
    if let Some(train) = split_dir(&["train"]) {
        let test = split_dir(&["test", "val"]).ok_or_else(|| {
            EmberError::bad_input(format!(
                "{} has train/ but no test/ or val/ folder",
                dir.display()
            ))
        })?;
        return Ok((
            Arc::new(ImageFolder::open(&train, channels, size, size)?),
            Arc::new(ImageFolder::open(&test, channels, size, size)?),
        ));
    }
    let all: Arc<dyn Dataset> = Arc::new(ImageFolder::open(dir, channels, size, size)?);
    let (mut train, mut test) = (Vec::new(), Vec::new());
    let mut seen = vec![0usize; all.classes().len()];
    for i in 0..all.len() {
        let label = all.label(i)? as usize;
        seen[label] += 1;
        if seen[label].is_multiple_of(10) {
            test.push(i)
        } else {
            train.push(i)
        }
    }
    if test.is_empty() {
        return Err(EmberError::bad_input(format!(
            "{}: too few images to hold out a test set (need 10 per class, or train/ and test/ folders)",
            dir.display()
        )));
    }
    Ok((
        Arc::new(Subset::new(all.clone(), train, "train")),
        Arc::new(Subset::new(all, test, "held-out test")),
    ))
}

/// Some items of another dataset.
pub struct Subset {
    inner: Arc<dyn Dataset>,
    indices: Vec<usize>,
    name: &'static str,
}

impl Subset {
    pub fn new(inner: Arc<dyn Dataset>, indices: Vec<usize>, name: &'static str) -> Self {
        Self {
            inner,
            indices,
            name,
        }
    }
}

impl Dataset for Subset {
    fn len(&self) -> usize {
        self.indices.len()
    }
    fn get(&self, index: usize) -> Result<(Chw, u32)> {
        self.inner.get(self.indices[index])
    }
    fn label(&self, index: usize) -> Result<u32> {
        self.inner.label(self.indices[index])
    }
    fn dense(&self) -> bool {
        self.inner.dense()
    }
    fn get_dense(&self, index: usize) -> Result<(Chw, u32, Vec<u32>)> {
        self.inner.get_dense(self.indices[index])
    }
    fn classes(&self) -> &[String] {
        self.inner.classes()
    }
    fn image_dims(&self) -> [usize; 3] {
        self.inner.image_dims()
    }
    fn source(&self) -> String {
        format!(
            "{} split ({} images) of {}",
            self.name,
            self.len(),
            self.inner.source()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_and_refuses_missing_folders() {
        assert_eq!(
            "fashion-mnist".parse::<DataSource>().unwrap(),
            DataSource::FashionMnist
        );
        let err = "/no/such/dir".parse::<DataSource>().unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("does not exist"));
    }

    #[test]
    fn a_flat_folder_holds_out_every_tenth_image() {
        let dir = tempfile::tempdir().unwrap();
        for class in ["a", "b"] {
            std::fs::create_dir(dir.path().join(class)).unwrap();
            for i in 0..20 {
                image::GrayImage::from_pixel(3, 3, image::Luma([i * 10]))
                    .save(dir.path().join(class).join(format!("{i:02}.png")))
                    .unwrap();
            }
        }
        let data = open(&DataSource::Folder(dir.path().into()), 1, 8).unwrap();
        assert_eq!((data.train.len(), data.test.len()), (36, 4));
        assert_eq!(data.classes, ["a", "b"]);
        assert_eq!(data.test.get(0).unwrap().0.dims(), [1, 8, 8]);
    }
}
