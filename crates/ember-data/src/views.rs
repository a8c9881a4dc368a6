//! The two augmented views of self-supervised pre-training, with the official operations and
//! parameters, for any input size and for one- or three-channel images.
//!
//! | recipe | view 1 | view 2 |
//! |---|---|---|
//! | ReSSL (`data/augmentation.py`) | strong, to the student: crop, jitter (0.4, 0.4, 0.4, 0.1) p 0.8, grayscale p 0.2, blur p 0.5, flip | weak, to the teacher: crop, flip |
//! | BYOL / LEWEL / MoCo (`get_byol_tranforms`) | crop, flip, jitter (0.4, 0.4, 0.2, 0.1) p 0.8, grayscale p 0.2, blur p 1.0 | the same with blur p 0.1 and solarise p 0.2 |
//!
//! Every crop is `RandomResizedCrop(size, scale (0.2, 1))`; every view ends with the dataset
//! normalisation. Blur sigma: the official U(0.1, 2.0) pixels is for 224-pixel crops; below
//! 96 pixels we draw from U(0.1, 0.5) instead (at 28 pixels the proportional 0.0125-0.25 is
//! no blur at all, and 2 pixels erases a Fashion-MNIST item). On one channel, saturation,
//! hue and grayscale are the identity (see `photometric`).

use crate::photometric::Jitter;
use crate::preprocess::Preprocess;
use crate::transforms::{Pipeline, Transform};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ViewRecipe {
    /// ReSSL: (strong, weak).
    Ressl,
    /// BYOL as LEWEL's code has it (also used for the MoCo bases): (blurred, solarised).
    Byol,
    /// MAE's (masked image modelling): one view, a random resized crop and a flip.
    Mim,
    /// Supervised training's: one view, a random crop with this zero padding and, if
    /// `flip`, a horizontal flip (a search supernet trains on labels; ScaleNet's official
    /// recipe has no flip).
    Supervised { crop_padding: usize, flip: bool },
}

/// One pipeline per view, all producing the same shape.
#[derive(Debug, Clone, PartialEq)]
pub struct Views(pub Vec<Pipeline>);

/// The official crop scale range of both recipes.
const CROP_SCALE: (f64, f64) = (0.2, 1.0);
const CROP_RATIO: (f64, f64) = (3.0 / 4.0, 4.0 / 3.0);

/// Blur sigma range (pixels) for crops of `size` pixels: the official one at ImageNet
/// sizes, a small-image one below 96 pixels (module docs).
pub fn blur_sigma(size: usize) -> (f64, f64) {
    if size >= 96 {
        (0.1, 2.0)
    } else {
        (0.1, 0.5)
    }
}

impl ViewRecipe {
    pub fn views(self, pre: &Preprocess) -> Views {
        let crop = Transform::RandomResizedCrop {
            height: pre.height,
            width: pre.width,
            scale: CROP_SCALE,
            ratio: CROP_RATIO,
        };
        let flip = Transform::HorizontalFlip { p: 0.5 };
        let jitter = |saturation: f64| Transform::ColorJitter {
            jitter: Jitter {
                brightness: 0.4,
                contrast: 0.4,
                saturation,
                hue: 0.1,
            },
            p: 0.8,
        };
        let gray = Transform::Grayscale { p: 0.2 };
        let sigma = blur_sigma(pre.height.min(pre.width));
        let blur = |p: f64| Transform::GaussianBlur { sigma, p };
        let views = match self {
            ViewRecipe::Mim => vec![vec![crop, flip]],
            // The supervised pipeline normalises already.
            ViewRecipe::Supervised { crop_padding, flip } => {
                return Views(vec![pre.train_pipeline(crop_padding, flip)])
            }
            ViewRecipe::Ressl => vec![
                vec![
                    crop.clone(),
                    jitter(0.4),
                    gray.clone(),
                    blur(0.5),
                    flip.clone(),
                ],
                vec![crop, flip],
            ],
            ViewRecipe::Byol => vec![
                vec![
                    crop.clone(),
                    flip.clone(),
                    jitter(0.2),
                    gray.clone(),
                    blur(1.0),
                ],
                vec![
                    crop,
                    flip,
                    jitter(0.2),
                    gray,
                    blur(0.1),
                    Transform::Solarize {
                        threshold: 128.0 / 255.0,
                        p: 0.2,
                    },
                ],
            ],
        };
        Views(
            views
                .into_iter()
                .map(|mut steps| {
                    steps.push(pre.normalize());
                    Pipeline(steps)
                })
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::Chw;
    use ember_core::EmberRng;

    fn fashion() -> Preprocess {
        Preprocess {
            channels: 1,
            height: 28,
            width: 28,
            mean: vec![0.286],
            std: vec![0.353],
        }
    }

    #[test]
    fn views_keep_the_shape_and_differ() {
        for recipe in [ViewRecipe::Ressl, ViewRecipe::Byol] {
            let views = recipe.views(&fashion());
            assert_eq!(views.0.len(), 2);
            let img = Chw {
                channels: 1,
                height: 28,
                width: 28,
                data: (0..784).map(|i| (i % 28) as f32 / 28.0).collect(),
            };
            let mut rng = EmberRng::new(1);
            let a = views.0[0].apply(img.clone(), &mut rng);
            let b = views.0[1].apply(img, &mut rng);
            assert_eq!(a.dims(), [1, 28, 28]);
            assert_eq!(views.0[1].output_dims([1, 28, 28]).unwrap(), [1, 28, 28]);
            assert_ne!(a.data, b.data);
        }
    }
}
