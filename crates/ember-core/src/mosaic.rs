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
