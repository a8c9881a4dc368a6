//! Image transforms, torchvision semantics: `Resize` (bilinear, half-pixel centres, no
//! antialias), `RandomCrop(size, padding)` with zero fill, `RandomResizedCrop`,
//! `RandomHorizontalFlip(p)`, the self-supervised colour augmentations (`ColorJitter`,
//! `RandomGrayscale`, Gaussian blur, `RandomSolarize`, each applied with a probability),
//! `Normalize(mean, std)`. Random choices draw from the per-sample generator the loader
//! passes in, so an epoch's augmentation depends only on (seed, epoch, position).

use ember_core::{EmberError, EmberRng, Result};

use crate::photometric::{color_jitter, gaussian_blur, grayscale, solarize, Jitter};
use crate::resized_crop::random_resized_crop;
use crate::sample::Chw;

#[derive(Debug, Clone, PartialEq)]
pub enum Transform {
    Resize {
        height: usize,
        width: usize,
    },
    RandomCrop {
        height: usize,
        width: usize,
        padding: usize,
    },
    HorizontalFlip {
        p: f64,
    },
    /// A window of `scale` of the area and aspect in `ratio`, resized to `height x width`.
    RandomResizedCrop {
        height: usize,
        width: usize,
        scale: (f64, f64),
        ratio: (f64, f64),
    },
    /// `RandomApply([ColorJitter(...)], p)`.
    ColorJitter {
        jitter: Jitter,
        p: f64,
    },
    Grayscale {
        p: f64,
    },
    /// Blur with sigma uniform in `sigma`, with probability `p`.
    GaussianBlur {
        sigma: (f64, f64),
        p: f64,
    },
    /// Values at or above `threshold` (in [0, 1]) inverted, with probability `p`.
    Solarize {
        threshold: f32,
        p: f64,
    },
    Normalize {
        mean: Vec<f32>,
        std: Vec<f32>,
    },
}

/// Transforms applied in order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Pipeline(pub Vec<Transform>);

impl Pipeline {
    pub fn apply(&self, mut img: Chw, rng: &mut EmberRng) -> Chw {
        for t in &self.0 {
            img = t.apply(img, rng);
        }
        img
    }

    /// The `[c, h, w]` the pipeline produces from `dims`, checking that it can.
    /// Whether every pixel stays where it is on images of `dims` (no crop, flip or resize
    /// that changes anything), so per-pixel labels still fit the output.
    pub fn keeps_geometry(&self, dims: [usize; 3]) -> bool {
        self.0.iter().all(|t| match t {
            Transform::Resize { height, width } => [*height, *width] == [dims[1], dims[2]],
            Transform::RandomCrop {
                height,
                width,
                padding,
            } => *padding == 0 && [*height, *width] == [dims[1], dims[2]],
            Transform::HorizontalFlip { p } => *p == 0.0,
            Transform::RandomResizedCrop { .. } => false,
            Transform::ColorJitter { .. }
            | Transform::Grayscale { .. }
            | Transform::GaussianBlur { .. }
            | Transform::Solarize { .. }
            | Transform::Normalize { .. } => true,
        })
    }

    pub fn output_dims(&self, dims: [usize; 3]) -> Result<[usize; 3]> {
        self.0.iter().try_fold(dims, |[c, h, w], t| match t {
            Transform::Resize { height, width } => Ok([c, *height, *width]),
            Transform::RandomCrop {
                height,
                width,
                padding,
            } => {
                if *height > h + 2 * padding || *width > w + 2 * padding {
                    return Err(EmberError::bad_input(format!(
                        "random crop {height}x{width} is larger than the padded {}x{} image",
                        h + 2 * padding,
                        w + 2 * padding
                    )));
                }
                Ok([c, *height, *width])
            }
            Transform::RandomResizedCrop { height, width, .. } => Ok([c, *height, *width]),
            Transform::HorizontalFlip { .. }
            | Transform::ColorJitter { .. }
            | Transform::Grayscale { .. }
            | Transform::GaussianBlur { .. }
            | Transform::Solarize { .. } => Ok([c, h, w]),
            Transform::Normalize { mean, std } => {
                if mean.len() != c || std.len() != c {
                    return Err(EmberError::bad_input(format!(
                        "normalisation has {} means and {} stds for {c}-channel images",
                        mean.len(),
                        std.len()
                    )));
                }
                Ok([c, h, w])
            }
        })
    }
}

impl Transform {
    pub fn apply(&self, img: Chw, rng: &mut EmberRng) -> Chw {
        match self {
            Transform::Resize { height, width } if (img.height, img.width) == (*height, *width) => {
                img
            }
            Transform::Resize { height, width } => resize_bilinear(&img, *height, *width),
            Transform::RandomCrop {
                height,
                width,
                padding,
            } => {
                let top = rng.below(img.height + 2 * padding - height + 1);
                let left = rng.below(img.width + 2 * padding - width + 1);
                crop_padded(
                    &img,
                    top as isize - *padding as isize,
                    left as isize - *padding as isize,
                    *height,
                    *width,
                )
            }
            Transform::HorizontalFlip { p } => {
                if rng.bernoulli(*p) {
                    flip_horizontal(img)
                } else {
                    img
                }
            }
            Transform::RandomResizedCrop {
                height,
                width,
                scale,
                ratio,
            } => random_resized_crop(&img, *height, *width, *scale, *ratio, rng),
            Transform::ColorJitter { jitter, p } => {
                if rng.bernoulli(*p) {
                    color_jitter(img, jitter, rng)
                } else {
                    img
                }
            }
            Transform::Grayscale { p } => {
                if rng.bernoulli(*p) {
                    grayscale(img)
                } else {
                    img
                }
            }
            Transform::GaussianBlur { sigma, p } => {
                if rng.bernoulli(*p) {
                    gaussian_blur(&img, rng.uniform(sigma.0, sigma.1))
                } else {
                    img
                }
            }
            Transform::Solarize { threshold, p } => {
                if rng.bernoulli(*p) {
                    solarize(img, *threshold)
                } else {
                    img
                }
            }
            Transform::Normalize { mean, std } => normalize(img, mean, std),
        }
    }
}

/// The `height x width` window whose top-left corner is (`top`, `left`) in image
/// coordinates; pixels outside the image are zero.
pub fn crop_padded(img: &Chw, top: isize, left: isize, height: usize, width: usize) -> Chw {
    let mut out = Chw::zeros(img.channels, height, width);
    let (h, w) = (img.height as isize, img.width as isize);
    let x0 = left.max(0);
    let x1 = (left + width as isize).min(w);
    if x1 <= x0 {
        return out;
    }
    for c in 0..img.channels {
        let src = img.plane(c);
        for y in 0..height {
            let sy = top + y as isize;
            if sy < 0 || sy >= h {
                continue;
            }
            let row = (c * height + y) * width;
            let dst = &mut out.data[row + (x0 - left) as usize..row + (x1 - left) as usize];
            dst.copy_from_slice(&src[(sy * w + x0) as usize..(sy * w + x1) as usize]);
        }
    }
    out
}

pub fn flip_horizontal(mut img: Chw) -> Chw {
    let w = img.width;
    for row in img.data.chunks_exact_mut(w) {
        row.reverse();
    }
    img
}

pub fn normalize(mut img: Chw, mean: &[f32], std: &[f32]) -> Chw {
    let plane = img.height * img.width;
    for (c, values) in img.data.chunks_exact_mut(plane).enumerate() {
        let inv = 1.0 / std[c];
        values.iter_mut().for_each(|v| *v = (*v - mean[c]) * inv);
    }
    img
}

/// Bilinear resize with half-pixel centres (`align_corners=False`), as torchvision's
/// `Resize(antialias=False)`.
pub fn resize_bilinear(img: &Chw, height: usize, width: usize) -> Chw {
    if (img.height, img.width) == (height, width) {
        return img.clone();
    }
    let taps = |n_in: usize, n_out: usize| -> Vec<(usize, usize, f32)> {
        let scale = n_in as f32 / n_out as f32;
        (0..n_out)
            .map(|o| {
                let src = ((o as f32 + 0.5) * scale - 0.5).max(0.0);
                let i0 = (src.floor() as usize).min(n_in - 1);
                let i1 = (i0 + 1).min(n_in - 1);
                (i0, i1, src - i0 as f32)
            })
            .collect()
    };
    let (rows, cols) = (taps(img.height, height), taps(img.width, width));
    let mut out = Chw::zeros(img.channels, height, width);
    for c in 0..img.channels {
        let src = img.plane(c);
        for (y, &(r0, r1, fy)) in rows.iter().enumerate() {
            for (x, &(c0, c1, fx)) in cols.iter().enumerate() {
                let at = |r: usize, cc: usize| src[r * img.width + cc];
                let top = at(r0, c0) * (1.0 - fx) + at(r0, c1) * fx;
                let bottom = at(r1, c0) * (1.0 - fx) + at(r1, c1) * fx;
                out.data[(c * height + y) * width + x] = top * (1.0 - fy) + bottom * fy;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(h: usize, w: usize) -> Chw {
        Chw {
            channels: 1,
            height: h,
            width: w,
            data: (0..h * w).map(|v| v as f32).collect(),
        }
    }

    #[test]
    fn crop_with_padding_fills_zeros_outside() {
        let img = ramp(3, 3);
        let out = crop_padded(&img, -1, -1, 3, 3);
        assert_eq!(out.data, vec![0., 0., 0., 0., 0., 1., 0., 3., 4.]);
        let out = crop_padded(&img, 1, 1, 2, 2);
        assert_eq!(out.data, vec![4., 5., 7., 8.]);
    }

    #[test]
    fn random_crop_stays_within_the_padding() {
        let img = ramp(4, 4);
        let t = Transform::RandomCrop {
            height: 4,
            width: 4,
            padding: 2,
        };
        let mut rng = EmberRng::new(1);
        for _ in 0..50 {
            let out = t.apply(img.clone(), &mut rng);
            // A full-size crop shifted by at most the padding keeps a 2x2 corner of the
            // image, which holds non-zero values of the ramp whatever the offset.
            assert!(
                out.data.iter().filter(|&&v| v > 0.0).count() >= 3,
                "{:?}",
                out.data
            );
            assert_eq!(out.dims(), [1, 4, 4]);
        }
    }

    #[test]
    fn flip_and_normalise() {
        let img = flip_horizontal(ramp(2, 3));
        assert_eq!(img.data, vec![2., 1., 0., 5., 4., 3.]);
        let img = normalize(img, &[1.0], &[2.0]);
        assert_eq!(img.data, vec![0.5, 0., -0.5, 2., 1.5, 1.]);
    }

    #[test]
    fn bilinear_resize_matches_torch_half_pixel_rule() {
        // torch.nn.functional.interpolate([[0, 1]], size=4, mode="bilinear",
        // align_corners=False) along one axis gives [0, 0.25, 0.75, 1].
        let img = Chw {
            channels: 1,
            height: 1,
            width: 2,
            data: vec![0., 1.],
        };
        let out = resize_bilinear(&img, 1, 4);
        assert_eq!(out.data, vec![0., 0.25, 0.75, 1.]);
        let down = resize_bilinear(&ramp(4, 4), 2, 2);
        assert_eq!(down.data, vec![2.5, 4.5, 10.5, 12.5]);
    }

    #[test]
    fn output_dims_checks_crops_and_channels() {
        let p = Pipeline(vec![
            Transform::RandomCrop {
                height: 28,
                width: 28,
                padding: 4,
            },
            Transform::Normalize {
                mean: vec![0.5],
                std: vec![0.5],
            },
        ]);
        assert_eq!(p.output_dims([1, 28, 28]).unwrap(), [1, 28, 28]);
        assert_eq!(p.output_dims([3, 28, 28]).unwrap_err().exit_code(), 2);
        assert!(p.output_dims([1, 10, 10]).is_err());
    }
}
