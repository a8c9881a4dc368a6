//! Colour and intensity augmentations of self-supervised learning, on [0, 1] images with
//! torchvision's semantics: `ColorJitter` (brightness, contrast, saturation, hue in a random
//! order, each factor drawn per image), `RandomGrayscale`, Gaussian blur, `RandomSolarize`.
//!
//! On one-channel images saturation, hue and grayscale are the identity, as in torchvision
//! (the grayscale of a gray image is itself); brightness and contrast still apply.

use ember_core::EmberRng;

use crate::sample::Chw;

/// ITU-R 601 luma, torchvision's `rgb_to_grayscale` weights.
const LUMA: [f32; 3] = [0.2989, 0.587, 0.114];

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Jitter {
    pub brightness: f64,
    pub contrast: f64,
    pub saturation: f64,
    pub hue: f64,
}

/// The gray value of each pixel (the image itself when it has one channel).
fn gray(img: &Chw) -> Vec<f32> {
    if img.channels != 3 {
        return img.plane(0).to_vec();
    }
    let (r, g, b) = (img.plane(0), img.plane(1), img.plane(2));
    (0..r.len())
        .map(|i| LUMA[0] * r[i] + LUMA[1] * g[i] + LUMA[2] * b[i])
        .collect()
}

/// `factor * img + (1 - factor) * other`, clamped to [0, 1]; `other` per pixel (one plane,
/// shared by the channels).
fn blend(img: &mut Chw, other: &[f32], factor: f32) {
    let plane = img.height * img.width;
    for values in img.data.chunks_exact_mut(plane) {
        for (v, o) in values.iter_mut().zip(other) {
            *v = (factor * *v + (1.0 - factor) * o).clamp(0.0, 1.0);
        }
    }
}

/// [`blend`] towards one value everywhere (black for brightness, the mean for contrast).
fn blend_value(img: &mut Chw, other: f32, factor: f32) {
    for v in img.data.iter_mut() {
        *v = (factor * *v + (1.0 - factor) * other).clamp(0.0, 1.0);
    }
}

/// A factor from `[max(0, 1 - s), 1 + s]`, `None` when `s` is 0 (torchvision skips the op).
fn factor(strength: f64, rng: &mut EmberRng) -> Option<f32> {
    (strength > 0.0).then(|| rng.uniform((1.0 - strength).max(0.0), 1.0 + strength) as f32)
}

pub fn color_jitter(mut img: Chw, j: &Jitter, rng: &mut EmberRng) -> Chw {
    let mut order = [0usize, 1, 2, 3];
    rng.shuffle(&mut order);
    for op in order {
        match op {
            0 => {
                if let Some(f) = factor(j.brightness, rng) {
                    blend_value(&mut img, 0.0, f);
                }
            }
            1 => {
                if let Some(f) = factor(j.contrast, rng) {
                    let g = gray(&img);
                    let mean = g.iter().sum::<f32>() / g.len().max(1) as f32;
                    blend_value(&mut img, mean, f);
                }
            }
            2 => {
                if let Some(f) = factor(j.saturation, rng) {
                    if img.channels == 3 {
                        let g = gray(&img);
                        blend(&mut img, &g, f);
                    }
                }
            }
            _ => {
                if j.hue > 0.0 {
                    let shift = rng.uniform(-j.hue, j.hue) as f32;
                    if img.channels == 3 {
                        shift_hue(&mut img, shift);
                    }
                }
            }
        }
    }
    img
}

/// Rotates the hue of every pixel by `shift` turns (torchvision's `adjust_hue`: RGB to HSV,
/// `h = (h + shift) mod 1`, back to RGB).
fn shift_hue(img: &mut Chw, shift: f32) {
    let plane = img.height * img.width;
    for i in 0..plane {
        let (r, g, b) = (img.data[i], img.data[plane + i], img.data[2 * plane + i]);
        let max = r.max(g).max(b);
        let min = r.min(g).min(b);
        let delta = max - min;
        let s = if max > 0.0 { delta / max } else { 0.0 };
        let mut h = if delta == 0.0 {
            0.0
        } else if max == r {
            ((g - b) / delta).rem_euclid(6.0)
        } else if max == g {
            (b - r) / delta + 2.0
        } else {
            (r - g) / delta + 4.0
        } / 6.0;
        h = (h + shift).rem_euclid(1.0);
        let (r, g, b) = hsv_to_rgb(h, s, max);
        img.data[i] = r;
        img.data[plane + i] = g;
        img.data[2 * plane + i] = b;
    }
}

fn hsv_to_rgb(h: f32, s: f32, v: f32) -> (f32, f32, f32) {
    let sector = (h * 6.0).floor();
    let f = h * 6.0 - sector;
    let (p, q, t) = (v * (1.0 - s), v * (1.0 - s * f), v * (1.0 - s * (1.0 - f)));
    match sector as i32 % 6 {
        0 => (v, t, p),
        1 => (q, v, p),
        2 => (p, v, t),
        3 => (p, q, v),
        4 => (t, p, v),
        _ => (v, p, q),
    }
}

/// Every channel replaced by the luma (a no-op on one channel).
pub fn grayscale(mut img: Chw) -> Chw {
    if img.channels == 3 {
        let g = gray(&img);
        for values in img.data.chunks_exact_mut(g.len()) {
            values.copy_from_slice(&g);
        }
    }
    img
}

/// Separable Gaussian blur with standard deviation `sigma` pixels: kernel radius
/// `ceil(3 sigma)` (at least 1), reflect padding as torchvision's `gaussian_blur`. (The
/// official ReSSL/BYOL code blurs with PIL's `GaussianBlur(radius=sigma)`, an iterated
/// box-filter approximation of the same Gaussian.)
pub fn gaussian_blur(img: &Chw, sigma: f64) -> Chw {
    let radius = ((3.0 * sigma).ceil() as usize).max(1);
    let taps: Vec<f32> = (0..=2 * radius)
        .map(|i| {
            let x = i as f64 - radius as f64;
            (-x * x / (2.0 * sigma * sigma)).exp() as f32
        })
        .collect();
    let total: f32 = taps.iter().sum();
    let taps: Vec<f32> = taps.iter().map(|t| t / total).collect();
    let reflect = |i: isize, n: usize| -> usize {
        let n = n as isize;
        if n == 1 {
            return 0;
        }
        let period = 2 * (n - 1);
        let m = i.rem_euclid(period);
        (if m < n { m } else { period - m }) as usize
    };
    let (h, w) = (img.height, img.width);
    let mut out = img.clone();
    let mut row_pass = vec![0f32; h * w];
    for c in 0..img.channels {
        let src = img.plane(c);
        for y in 0..h {
            for x in 0..w {
                row_pass[y * w + x] = taps
                    .iter()
                    .enumerate()
                    .map(|(k, t)| {
                        t * src[y * w + reflect(x as isize + k as isize - radius as isize, w)]
                    })
                    .sum();
            }
        }
        let dst = &mut out.data[c * h * w..(c + 1) * h * w];
        for y in 0..h {
            for x in 0..w {
                dst[y * w + x] = taps
                    .iter()
                    .enumerate()
                    .map(|(k, t)| {
                        t * row_pass[reflect(y as isize + k as isize - radius as isize, h) * w + x]
                    })
                    .sum();
            }
        }
    }
    out
}

/// Values at or above `threshold` inverted (`1 - v`), as PIL's `solarize`.
pub fn solarize(mut img: Chw, threshold: f32) -> Chw {
    img.data
        .iter_mut()
        .filter(|v| **v >= threshold)
        .for_each(|v| *v = 1.0 - *v);
    img
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rgb(pixels: &[[f32; 3]]) -> Chw {
        let n = pixels.len();
        let mut data = vec![0.0; 3 * n];
        for (i, p) in pixels.iter().enumerate() {
            for c in 0..3 {
                data[c * n + i] = p[c];
            }
        }
        Chw {
            channels: 3,
            height: 1,
            width: n,
            data,
        }
    }

    #[test]
    fn hue_rotation_by_a_third_cycles_the_primaries() {
        let mut img = rgb(&[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]);
        shift_hue(&mut img, 1.0 / 3.0);
        let got: Vec<f32> = img.data.iter().map(|v| (v * 1e4).round() / 1e4).collect();
        // red -> green, green -> blue
        assert_eq!(got, vec![0.0, 0.0, 1.0, 0.0, 0.0, 1.0]);
    }

    #[test]
    fn gray_images_ignore_saturation_hue_and_grayscale() {
        let img = Chw {
            channels: 1,
            height: 1,
            width: 3,
            data: vec![0.1, 0.5, 0.9],
        };
        let j = Jitter {
            brightness: 0.0,
            contrast: 0.0,
            saturation: 0.9,
            hue: 0.4,
        };
        let out = color_jitter(img.clone(), &j, &mut EmberRng::new(0));
        assert_eq!(out, img);
        assert_eq!(grayscale(img.clone()), img);
    }

    #[test]
    fn contrast_pulls_towards_the_mean_and_brightness_scales() {
        let img = Chw {
            channels: 1,
            height: 1,
            width: 2,
            data: vec![0.2, 0.6],
        };
        let mut v = img.clone();
        blend(&mut v, &[0.4, 0.4], 0.5);
        assert_eq!(v.data, vec![0.3, 0.5]);
        let mut b = img;
        blend(&mut b, &[0.0, 0.0], 2.0);
        assert_eq!(b.data, vec![0.4, 1.0], "clamped at 1");
    }

    #[test]
    fn blur_keeps_constants_and_mass_and_spreads_a_spike() {
        let flat = Chw {
            channels: 1,
            height: 5,
            width: 4,
            data: vec![0.5; 20],
        };
        assert!(gaussian_blur(&flat, 1.2)
            .data
            .iter()
            .all(|v| (v - 0.5).abs() < 1e-6));
        // Far enough from the border that no reflected tap reaches the spike.
        let mut spike = Chw::zeros(1, 15, 15);
        spike.data[112] = 1.0;
        let out = gaussian_blur(&spike, 0.8);
        assert!((out.data.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        assert!(out.data[112] < 0.5 && out.data[111] > 0.05);
        assert!((out.data[111] - out.data[97]).abs() < 1e-6);
    }

    #[test]
    fn solarize_inverts_bright_pixels() {
        let img = Chw {
            channels: 1,
            height: 1,
            width: 3,
            data: vec![0.2, 0.5, 0.9],
        };
        let out = solarize(img, 0.5);
        assert_eq!(
            out.data
                .iter()
                .map(|v| (v * 10.0).round() / 10.0)
                .collect::<Vec<_>>(),
            vec![0.2, 0.5, 0.1]
        );
    }
}
