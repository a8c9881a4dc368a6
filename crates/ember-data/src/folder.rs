//! Image folders laid out as torchvision's `ImageFolder`: `DIR/<class>/<image>`, classes in
//! sorted order, PNG or JPEG files. Images are decoded on the loader's threads, converted to
//! grey or RGB and resized to one size so they batch.

use std::path::{Path, PathBuf};

use ember_core::{EmberError, Result};

use crate::dataset::Dataset;
use crate::sample::Chw;

const EXTENSIONS: [&str; 3] = ["png", "jpg", "jpeg"];

pub struct ImageFolder {
    root: PathBuf,
    items: Vec<(PathBuf, u32)>,
    classes: Vec<String>,
    dims: [usize; 3],
}

fn is_image(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| EmberError::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    Ok(entries)
}

impl ImageFolder {
    /// Scans `root`; every image becomes `channels` x `height` x `width`.
    pub fn open(root: &Path, channels: usize, height: usize, width: usize) -> Result<Self> {
        if !root.is_dir() {
            return Err(EmberError::bad_input(format!(
                "data directory {} does not exist",
                root.display()
            )));
        }
        let mut classes = Vec::new();
        let mut items = Vec::new();
        for dir in sorted_entries(root)?.into_iter().filter(|p| p.is_dir()) {
            let label = classes.len() as u32;
            classes.push(
                dir.file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned(),
            );
            for file in sorted_entries(&dir)?.into_iter().filter(|p| is_image(p)) {
                items.push((file, label));
            }
        }
        if items.is_empty() {
            return Err(EmberError::bad_input(format!(
                "{}: no images found (expected DIR/<class>/<image>.png|jpg)",
                root.display()
            )));
        }
        Ok(Self {
            root: root.to_path_buf(),
            items,
            classes,
            dims: [channels, height, width],
        })
    }
}

/// Decodes `path` into a `channels`-channel (1 or 3) image of `height x width`, values in
/// [0, 1].
pub fn decode_image(path: &Path, channels: usize, height: usize, width: usize) -> Result<Chw> {
    let img = image::ImageReader::open(path)
        .map_err(|e| EmberError::io(path, e))?
        .with_guessed_format()
        .map_err(|e| EmberError::io(path, e))?
        .decode()
        .map_err(|e| {
            EmberError::bad_input(format!("{}: not a readable image ({e})", path.display()))
        })?;
    let img = if (img.height() as usize, img.width() as usize) != (height, width) {
        img.resize_exact(
            width as u32,
            height as u32,
            image::imageops::FilterType::Triangle,
        )
    } else {
        img
    };
    let bytes: Vec<u8> = match channels {
        1 => img.to_luma8().into_raw(),
        3 => {
            // interleaved HWC -> planar CHW
            let rgb = img.to_rgb8().into_raw();
            (0..3)
                .flat_map(|c| rgb.iter().skip(c).step_by(3).copied().collect::<Vec<_>>())
                .collect()
        }
        c => {
            return Err(EmberError::bad_input(format!(
                "images can have 1 or 3 channels, not {c}"
            )))
        }
    };
    Ok(Chw::from_u8(channels, height, width, &bytes))
}

impl Dataset for ImageFolder {
    fn len(&self) -> usize {
        self.items.len()
    }

    fn get(&self, index: usize) -> Result<(Chw, u32)> {
        let (path, label) = &self.items[index];
        let [c, h, w] = self.dims;
        Ok((decode_image(path, c, h, w)?, *label))
    }

    fn label(&self, index: usize) -> Result<u32> {
        Ok(self.items[index].1)
    }

    fn classes(&self) -> &[String] {
        &self.classes
    }

    fn image_dims(&self) -> [usize; 3] {
        self.dims
    }

    fn source(&self) -> String {
        format!(
            "image folder {} ({} images, {} classes)",
            self.root.display(),
            self.items.len(),
            self.classes.len()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_classes_in_sorted_order_and_decodes_rgb_planes() {
        let dir = tempfile::tempdir().unwrap();
        for (class, colour) in [("zebra", [255u8, 0, 0]), ("ant", [0, 0, 255])] {
            std::fs::create_dir(dir.path().join(class)).unwrap();
            let img = image::RgbImage::from_pixel(4, 2, image::Rgb(colour));
            img.save(dir.path().join(class).join("a.png")).unwrap();
        }
        std::fs::write(dir.path().join("ant").join("notes.txt"), "skip me").unwrap();
        let ds = ImageFolder::open(dir.path(), 3, 2, 4).unwrap();
        assert_eq!(ds.classes(), ["ant", "zebra"]);
        assert_eq!(ds.len(), 2);
        let (img, label) = ds.get(0).unwrap();
        assert_eq!(label, 0);
        assert_eq!(img.plane(2), &[1.0; 8]);
        assert_eq!(img.plane(0), &[0.0; 8]);
        let (grey, _) = ImageFolder::open(dir.path(), 1, 4, 4)
            .unwrap()
            .get(1)
            .unwrap();
        assert_eq!(grey.dims(), [1, 4, 4]);
    }

    #[test]
    fn missing_folders_and_non_images_are_bad_input() {
        let err = ImageFolder::open(Path::new("/nonexistent/data"), 1, 8, 8)
            .err()
            .unwrap();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("does not exist"));
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("fake.png");
        std::fs::write(&fake, "not a png").unwrap();
        let err = decode_image(&fake, 1, 8, 8).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("not a readable image"), "{err}");
    }
}
