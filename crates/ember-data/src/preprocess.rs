//! What a model expects of its input: channels, size and normalisation. Saved in a
//! checkpoint (`ember.preprocess`) so `predict` prepares any image file as training did.

use std::path::Path;

use ember_core::{CheckpointMeta, EmberError, EmberRng, Result};
use serde::{Deserialize, Serialize};

use crate::folder::decode_image;
use crate::sample::Chw;
use crate::transforms::{Pipeline, Transform};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Preprocess {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

impl Preprocess {
    /// The preprocessing recorded in a checkpoint's metadata (`ember.preprocess`); `what`
    /// names the checkpoint in the error when it has none.
    pub fn of_checkpoint(meta: &CheckpointMeta, what: &str) -> Result<Self> {
        meta.extra
            .get("preprocess")
            .and_then(|p| serde_json::from_str(p).ok())
            .ok_or_else(|| {
                EmberError::bad_input(format!(
                    "{what}: no ember.preprocess metadata (input size and normalisation)"
                ))
            })
    }

    /// Resizing to the model's input (a no-op for images already that size).
    fn resize(&self) -> Transform {
        Transform::Resize {
            height: self.height,
            width: self.width,
        }
    }

    pub fn normalize(&self) -> Transform {
        Transform::Normalize {
            mean: self.mean.clone(),
            std: self.std.clone(),
        }
    }

    /// Resizing to the model's input, then normalisation.
    pub fn eval_pipeline(&self) -> Pipeline {
        Pipeline(vec![self.resize(), self.normalize()])
    }

    /// Resizing to the model's input, random crop with zero padding (none if
    /// `crop_padding` is 0), optional horizontal flip, then normalisation: the standard
    /// small-image augmentation.
    pub fn train_pipeline(&self, crop_padding: usize, flip: bool) -> Pipeline {
        let mut steps = vec![self.resize()];
        if crop_padding > 0 {
            steps.push(Transform::RandomCrop {
                height: self.height,
                width: self.width,
                padding: crop_padding,
            });
        }
        if flip {
            steps.push(Transform::HorizontalFlip { p: 0.5 });
        }
        steps.push(self.normalize());
        Pipeline(steps)
    }

    /// An image file, decoded, resized and normalised for the model.
    pub fn load_image(&self, path: &Path) -> Result<Chw> {
        let img = decode_image(path, self.channels, self.height, self.width)?;
        Ok(self.eval_pipeline().apply(img, &mut EmberRng::new(0)))
    }
}
