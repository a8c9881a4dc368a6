//! How a convolution is cut into GEMM-sized tiles, and the per-thread scratch they use.
//!
//! A tile is one group and a run of output pixels: part of one image when the image is
//! large, several whole images when it is small (ResNet's 7x7 and 4x4 stages), so that
//! every GEMM has enough columns to run well (at least 256 where the batch allows, and two
//! tiles per worker). Its im2col matrix is kept to about 4 MiB of f32. On a 2-core Zen 4,
//! narrower (64-column) tiles and one instead of two tiles per worker measured within the
//! run-to-run noise of this setting (about 15%).

use std::ops::Range;

use super::geometry::ConvGeometry;
use crate::cpu::Float;

/// Elements of one tile's im2col matrix (the budget decides the width for deep kernels).
const COL_BUDGET: usize = 1 << 20;
const MIN_COLS: usize = 256;
const MAX_COLS: usize = 2048;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Tile {
    pub group: usize,
    pub imgs: Range<usize>,
    /// Output pixels of each image in the tile (all of them when the tile spans images).
    pub pix: Range<usize>,
}

impl Tile {
    /// Columns of the tile's im2col matrix: image-major, then pixel.
    pub fn cols(&self) -> usize {
        self.imgs.len() * self.pix.len()
    }

    /// The tile reads and writes its images' planes in place (one image), rather than
    /// through a gathered copy (several images).
    pub fn single_image(&self) -> Option<usize> {
        (self.imgs.len() == 1).then_some(self.imgs.start)
    }
}

/// Tiles covering every (group, image, output pixel) once, ordered by group, then image,
/// then pixel; `threads` is how many workers will share them.
pub(crate) fn plan(g: &ConvGeometry, threads: usize) -> Vec<Tile> {
    let p = g.out_plane();
    let target = (COL_BUDGET / g.k_rows().max(1)).clamp(MIN_COLS, MAX_COLS);
    let mut tiles = Vec::new();
    // An image with enough pixels for a full-speed GEMM is tiled alone: its tiles read and
    // write the NCHW planes in place. Smaller images are batched and pay a gather/scatter.
    if p >= MIN_COLS {
        let parts = p.div_ceil(target);
        for group in 0..g.groups() {
            for n in 0..g.n {
                for i in 0..parts {
                    let pix = (i * p / parts)..((i + 1) * p / parts);
                    tiles.push(Tile {
                        group,
                        imgs: n..n + 1,
                        pix,
                    });
                }
            }
        }
    } else {
        // Several whole images per tile, but leave at least two tiles per worker.
        let fill = (target / p).max(1);
        let spread = (g.n * g.groups()).div_ceil(2 * threads).max(1);
        let per = fill.min(spread);
        for group in 0..g.groups() {
            let mut n = 0;
            while n < g.n {
                let end = (n + per).min(g.n);
                tiles.push(Tile {
                    group,
                    imgs: n..end,
                    pix: 0..p,
                });
                n = end;
            }
        }
    }
    tiles
}

/// Groups consecutive tiles that touch the same input planes (same group and images), so
/// that a task owning one group of tiles can accumulate into those planes alone.
pub(crate) fn by_input_planes(tiles: &[Tile]) -> Vec<&[Tile]> {
    tiles
        .chunk_by(|a, b| a.group == b.group && a.imgs == b.imgs)
        .collect()
}

/// Reusable buffers of one worker; grown on demand and never shrunk, so the allocations
/// (and page faults) happen once per worker rather than once per tile.
pub(crate) struct Scratch<T> {
    col: Vec<T>,
    tmp: Vec<T>,
}

impl<T> Default for Scratch<T> {
    fn default() -> Self {
        Self {
            col: Vec::new(),
            tmp: Vec::new(),
        }
    }
}

impl<T: Float> Scratch<T> {
    /// The column buffer and the staging buffer, with at least these lengths.
    pub fn buffers(&mut self, col_len: usize, tmp_len: usize) -> (&mut [T], &mut [T]) {
        if self.col.len() < col_len {
            self.col.resize(col_len, T::zero());
        }
        if self.tmp.len() < tmp_len {
            self.tmp.resize(tmp_len, T::zero());
        }
        (&mut self.col[..col_len], &mut self.tmp[..tmp_len])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conv::Conv2dParams;

    fn covered(g: &ConvGeometry, tiles: &[Tile]) -> Vec<u32> {
        let mut seen = vec![0u32; g.groups() * g.n * g.out_plane()];
        for t in tiles {
            for n in t.imgs.clone() {
                for p in t.pix.clone() {
                    seen[(t.group * g.n + n) * g.out_plane() + p] += 1;
                }
            }
        }
        seen
    }

    #[test]
    fn tiles_cover_every_output_once() {
        let cases = [
            ([8, 64, 56, 56], [64, 64, 3, 3], 1),
            ([128, 512, 4, 4], [512, 512, 3, 3], 1),
            ([3, 4, 9, 7], [6, 2, 3, 3], 2),
            ([1, 1, 1, 1], [1, 1, 1, 1], 1),
        ];
        for (x, w, groups) in cases {
            let g = ConvGeometry::for_conv(
                &x,
                &w,
                Conv2dParams::default().padding(w[2] / 2).groups(groups),
            )
            .unwrap();
            for threads in [1, 2, 16] {
                let tiles = plan(&g, threads);
                assert!(
                    covered(&g, &tiles).iter().all(|&c| c == 1),
                    "{x:?} {threads}"
                );
                let regrouped: usize = by_input_planes(&tiles).iter().map(|t| t.len()).sum();
                assert_eq!(regrouped, tiles.len());
            }
        }
    }

    #[test]
    fn small_images_are_batched_into_wide_tiles() {
        let g = ConvGeometry::for_conv(
            &[128, 512, 4, 4],
            &[512, 512, 3, 3],
            Conv2dParams::default().padding(1),
        )
        .unwrap();
        let tiles = plan(&g, 2);
        assert!(tiles.iter().all(|t| t.cols() >= MIN_COLS));
        assert!(tiles.len() >= 4);
    }
}
