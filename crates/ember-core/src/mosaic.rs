//! Image mosaics: rows of equal-size tiles (inputs, reconstructions, masks) written as one
//! PNG, enlarged with nearest-neighbour pixels so small images stay readable.

use std::path::Path;

use crate::error::{EmberError, Result};

/// An RGB image with values in [0, 1], row-major, channels last.
#[derive(Debug, Clone, PartialEq)]
pub struct Tile {
    pub width: usize,
    pub height: usize,
    pub rgb: Vec<f32>,
}

impl Tile {
    /// A tile from channel-first values `[c, h, w]` (1 channel: grey; 3: RGB) mapped from
    /// `[lo, hi]` to [0, 1] and clipped.
    pub fn from_chw(
        values: &[f32],
        (c, h, w): (usize, usize, usize),
        (lo, hi): (f32, f32),
    ) -> Self {
        let span = if hi > lo { hi - lo } else { 1.0 };
        let mut rgb = Vec::with_capacity(h * w * 3);
        for p in 0..h * w {
            for k in 0..3 {
                let v = values[(k % c) * h * w + p];
                rgb.push(((v - lo) / span).clamp(0.0, 1.0));
            }
        }
        Self {
            width: w,
            height: h,
            rgb,
        }
    }
}

/// Class colours for label overlays (class `k` takes `PALETTE[(k - 1) % len]`; class 0, the
/// background, is left as it is): Glasbey-style, far apart from each other and from grey.
pub const PALETTE: [[f32; 3]; 12] = [
    [0.90, 0.10, 0.10],
    [0.10, 0.70, 0.10],
    [0.15, 0.35, 0.95],
    [0.95, 0.80, 0.05],
    [0.85, 0.20, 0.85],
    [0.05, 0.80, 0.85],
    [0.95, 0.50, 0.05],
    [0.55, 0.30, 0.05],
    [0.55, 0.85, 0.35],
    [0.45, 0.10, 0.60],
    [0.95, 0.60, 0.70],
    [0.00, 0.45, 0.45],
];

impl Tile {
    /// A grey `h x w` image (values in [0, 1]) with every pixel of class `k > 0` blended half
    /// and half with its palette colour.
    pub fn overlay(grey: &[f32], (h, w): (usize, usize), labels: &[u32]) -> Self {
        let mut tile = Self::from_chw(grey, (1, h, w), (0.0, 1.0));
        for (p, &k) in labels.iter().enumerate().take(h * w) {
            if k > 0 {
                let colour = PALETTE[(k as usize - 1) % PALETTE.len()];
                for (c, v) in colour.iter().enumerate() {
                    let px = &mut tile.rgb[p * 3 + c];
                    *px = 0.5 * *px + 0.5 * v;
                }
            }
        }
        tile
    }

    /// A map of weights in [0, 1] over a grey image: the image darkened where the weight is
    /// low and tinted from blue (0) to yellow (1), so where a mask is on stands out.
    pub fn heat(grey: &[f32], (h, w): (usize, usize), weights: &[f32]) -> Self {
        let mut rgb = Vec::with_capacity(h * w * 3);
        for p in 0..h * w {
            let (g, m) = (grey[p].clamp(0.0, 1.0), weights[p].clamp(0.0, 1.0));
            let ramp = [m, m, 1.0 - m];
            rgb.extend(
                ramp.iter()
                    .map(|&r| 0.35 * g + 0.65 * r * (0.25 + 0.75 * m)),
            );
        }
        Self {
            width: w,
            height: h,
            rgb,
        }
    }
}

/// Writes `rows` of tiles (all the size of the first) as a PNG at `path`, each pixel
/// `scale` x `scale`, tiles `gap` pixels apart on a white background; atomically.
pub fn write_mosaic(path: &Path, rows: &[Vec<Tile>], scale: usize, gap: usize) -> Result<()> {
    let first = rows
        .iter()
        .flatten()
        .next()
        .ok_or_else(|| EmberError::Runtime("an empty mosaic".into()))?;
    let (tw, th) = (first.width * scale, first.height * scale);
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let (w, h) = (cols * (tw + gap) + gap, rows.len() * (th + gap) + gap);
    let mut img = image::RgbImage::from_pixel(w as u32, h as u32, image::Rgb([255, 255, 255]));
    for (r, row) in rows.iter().enumerate() {
        for (c, tile) in row.iter().enumerate() {
            if (tile.width, tile.height) != (first.width, first.height) {
                return Err(EmberError::Runtime("mosaic tiles differ in size".into()));
            }
            let (x0, y0) = (gap + c * (tw + gap), gap + r * (th + gap));
            for y in 0..th {
                for x in 0..tw {
                    let p = ((y / scale) * tile.width + x / scale) * 3;
                    let px = [0, 1, 2].map(|k| (tile.rgb[p + k] * 255.0).round() as u8);
                    img.put_pixel((x0 + x) as u32, (y0 + y) as u32, image::Rgb(px));
                }
            }
        }
    }
    let mut png = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .map_err(|e| EmberError::Runtime(format!("encoding {}: {e}", path.display())))?;
    crate::atomic::write_atomic(path, &png)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlays_tint_labelled_pixels_only() {
        let t = Tile::overlay(&[0.2, 0.2], (1, 2), &[0, 1]);
        assert_eq!(&t.rgb[..3], &[0.2, 0.2, 0.2]);
        assert!((t.rgb[3] - (0.1 + 0.5 * PALETTE[0][0])).abs() < 1e-6);
        let h = Tile::heat(&[0.0, 0.0], (1, 2), &[0.0, 1.0]);
        assert!(h.rgb[2] > h.rgb[0] && h.rgb[3] > h.rgb[5]);
    }

    #[test]
    fn grey_tiles_fill_all_three_channels_and_the_png_has_the_layout_size() {
        let t = Tile::from_chw(&[0.0, 0.5, 1.0, 2.0], (1, 2, 2), (0.0, 1.0));
        assert_eq!(&t.rgb[3..6], &[0.5, 0.5, 0.5]);
        assert_eq!(t.rgb[9], 1.0); // 2.0 clipped
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.png");
        write_mosaic(&path, &[vec![t.clone(), t.clone(), t]], 3, 1).unwrap();
        let img = image::open(&path).unwrap();
        assert_eq!((img.width(), img.height()), (3 * 7 + 1, 7 + 1));
    }
}
