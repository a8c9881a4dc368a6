//! torchvision's `RandomResizedCrop`: a window of random area (a `scale` fraction of the
//! image) and aspect ratio (log-uniform in `ratio`), ten tries to fit it, a centre crop
//! clamped to the ratio range when none fits, then a bilinear resize to the output size.

use ember_core::EmberRng;

use crate::sample::Chw;
use crate::transforms::{crop_padded, resize_bilinear};

/// `(top, left, height, width)` of the window, as `RandomResizedCrop.get_params`.
pub fn window(
    img_h: usize,
    img_w: usize,
    scale: (f64, f64),
    ratio: (f64, f64),
    rng: &mut EmberRng,
) -> (usize, usize, usize, usize) {
    let area = (img_h * img_w) as f64;
    let (log_lo, log_hi) = (ratio.0.ln(), ratio.1.ln());
    for _ in 0..10 {
        let target = area * rng.uniform(scale.0, scale.1);
        let aspect = rng.uniform(log_lo, log_hi).exp();
        let w = (target * aspect).sqrt().round() as usize;
        let h = (target / aspect).sqrt().round() as usize;
        if 0 < w && w <= img_w && 0 < h && h <= img_h {
            let top = rng.below(img_h - h + 1);
            let left = rng.below(img_w - w + 1);
            return (top, left, h, w);
        }
    }
    let in_ratio = img_w as f64 / img_h as f64;
    let (h, w) = if in_ratio < ratio.0 {
        (((img_w as f64) / ratio.0).round() as usize, img_w)
    } else if in_ratio > ratio.1 {
        (img_h, ((img_h as f64) * ratio.1).round() as usize)
    } else {
        (img_h, img_w)
    };
    let (h, w) = (h.clamp(1, img_h), w.clamp(1, img_w));
    ((img_h - h) / 2, (img_w - w) / 2, h, w)
}

pub fn random_resized_crop(
    img: &Chw,
    height: usize,
    width: usize,
    scale: (f64, f64),
    ratio: (f64, f64),
    rng: &mut EmberRng,
) -> Chw {
    let (top, left, h, w) = window(img.height, img.width, scale, ratio, rng);
    let crop = crop_padded(img, top as isize, left as isize, h, w);
    resize_bilinear(&crop, height, width)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_fit_and_cover_the_asked_area() {
        let mut rng = EmberRng::new(3);
        let mut fractions = Vec::new();
        for _ in 0..500 {
            let (top, left, h, w) = window(28, 28, (0.2, 1.0), (3.0 / 4.0, 4.0 / 3.0), &mut rng);
            assert!(top + h <= 28 && left + w <= 28 && h > 0 && w > 0);
            fractions.push((h * w) as f64 / 784.0);
        }
        let mean = fractions.iter().sum::<f64>() / fractions.len() as f64;
        // Uniform areas in [0.2, 1] average 0.6; rejections of wide windows near 1 pull it down.
        assert!((0.45..0.65).contains(&mean), "{mean}");
        assert!(fractions.iter().any(|&f| f < 0.3));
    }

    #[test]
    fn impossible_ratios_fall_back_to_a_centre_crop() {
        let mut rng = EmberRng::new(0);
        assert_eq!(
            window(10, 40, (1.0, 1.0), (1.0, 1.0), &mut rng),
            (0, 15, 10, 10)
        );
    }
}
