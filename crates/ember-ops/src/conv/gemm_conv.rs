//! Dense and grouped convolution on CPU as GEMMs over im2col tiles: the forward pass, the
//! input gradient (which is also the transposed convolution) and the weight gradient.
//!
//! Per tile and group, with `W` the group's `[cout_g, k]` weight, `C` the tile's `[k, cols]`
//! im2col matrix and `Y` its `[cout_g, cols]` output columns:
//!   forward       Y  = W C
//!   input grad    dC = W^T dY, then col2im(dC) into dX
//!   weight grad   dW += dY C^T
//! Tiles run in parallel, each GEMM on one thread (measured faster than one multithreaded
//! GEMM at these sizes); a GEMM gets all threads only when there are too few tiles.

use rayon::prelude::*;

use super::geometry::ConvGeometry;
use super::im2col::{col2im, im2col, Block};
use super::tiles::{by_input_planes, plan, Scratch, Tile};
use crate::cpu::{split_even, zeros, Float, SharedMut};
use crate::gemm::{matmul, MatMut, MatRef};

/// Runs `f` over `items`: in parallel with single-threaded GEMMs when there are enough items
/// to keep every thread busy, else one item at a time with multithreaded GEMMs.
fn for_each_item<I: Sync, T: Float>(items: &[I], f: impl Fn(&mut Scratch<T>, &I, usize) + Sync) {
    let threads = rayon::current_num_threads();
    if items.len() >= threads {
        items
            .par_iter()
            .for_each_init(Scratch::default, |s, item| f(s, item, 1));
    } else {
        let mut scratch = Scratch::default();
        items.iter().for_each(|item| f(&mut scratch, item, threads));
    }
}

/// The weight rows of one group as a `[cout_g, k]` matrix.
fn group_weight<T>(w: &[T], g: &ConvGeometry, group: usize) -> MatRef<T> {
    let (m, k) = (g.cout_g(), g.k_rows());
    MatRef::new(&w[group * m * k..(group + 1) * m * k], m, k, k, 1)
}

/// The tile's `[k, cols]` im2col matrix: a view of the input itself for a single-image
/// pointwise tile, else built in `col`.
fn columns<T: Float>(x: &[T], g: &ConvGeometry, tile: &Tile, col: &mut [T]) -> MatRef<T> {
    let (k, cols) = (g.k_rows(), tile.cols());
    let image = g.cin * g.in_plane();
    let group_offset = tile.group * g.cin_g() * g.in_plane();
    if let (Some(n), true) = (tile.single_image(), g.is_pointwise()) {
        let start = n * image + group_offset + tile.pix.start;
        return MatRef::new(&x[start..], k, cols, g.in_plane(), 1);
    }
    for (i, n) in tile.imgs.clone().enumerate() {
        let planes = &x[n * image + group_offset..][..g.cin_g() * g.in_plane()];
        let block = Block {
            pix: tile.pix.clone(),
            ld: cols,
            offset: i * tile.pix.len(),
        };
        im2col(planes, g, &block, col);
    }
    MatRef::new(col, k, cols, cols, 1)
}

/// Offset of the first output plane of `group` in image `n`.
fn out_offset(g: &ConvGeometry, n: usize, group: usize) -> usize {
    (n * g.cout + group * g.cout_g()) * g.out_plane()
}

/// The tile's `[cout_g, cols]` output gradient: a view into `dy` for a single image, else
/// gathered into `tmp`.
fn out_columns<T: Float>(dy: &[T], g: &ConvGeometry, tile: &Tile, tmp: &mut [T]) -> MatRef<T> {
    let (m, cols, p) = (g.cout_g(), tile.cols(), g.out_plane());
    if let Some(n) = tile.single_image() {
        return MatRef::new(
            &dy[out_offset(g, n, tile.group) + tile.pix.start..],
            m,
            cols,
            p,
            1,
        );
    }
    for (i, n) in tile.imgs.clone().enumerate() {
        let src = &dy[out_offset(g, n, tile.group)..][..m * p];
        for co in 0..m {
            tmp[co * cols + i * p..][..p].copy_from_slice(&src[co * p..][..p]);
        }
    }
    MatRef::new(tmp, m, cols, cols, 1)
}

/// `y = conv2d(x, w)`, NCHW.
pub(crate) fn forward<T: Float>(x: &[T], w: &[T], g: &ConvGeometry) -> Vec<T> {
    let tiles = plan(g, rayon::current_num_threads());
    // Every element is written once, by a GEMM or a copy, before anything reads it: a fresh
    // (lazily zeroed) allocation costs no extra pass.
    let mut y = vec![T::zero(); g.y_dims().iter().product()];
    let out = SharedMut::new(&mut y);
    let (m, p) = (g.cout_g(), g.out_plane());
    for_each_item(&tiles, |scratch, tile, threads| {
        let single = tile.single_image();
        let tmp_len = if single.is_some() { 0 } else { m * tile.cols() };
        let (col, tmp) = scratch.buffers(g.k_rows() * tile.cols(), tmp_len);
        let c = columns(x, g, tile, col);
        let wg = group_weight(w, g, tile.group);
        if let Some(n) = single {
            // SAFETY: tiles partition (group, image, pixel); this view covers the tile's
            // pixels of its group's output planes in its image, written by no other tile.
            let dst = unsafe {
                MatMut::from_raw(
                    out.ptr().add(out_offset(g, n, tile.group) + tile.pix.start),
                    m,
                    tile.cols(),
                    p,
                    1,
                )
            };
            matmul(dst, wg, c, false, threads);
            return;
        }
        matmul(
            MatMut::new(tmp, m, tile.cols(), tile.cols(), 1),
            wg,
            c,
            false,
            threads,
        );
        for (i, n) in tile.imgs.clone().enumerate() {
            // SAFETY: whole planes of this tile's own (image, group); tiles are disjoint.
            let dst = unsafe { out.slice(out_offset(g, n, tile.group), m * p) };
            for co in 0..m {
                dst[co * p..][..p].copy_from_slice(&tmp[co * tile.cols() + i * p..][..p]);
            }
        }
    });
    y
}

/// `dx` for `y = conv2d(x, w)` given `dy`; equivalently `conv_transpose2d(dy, w)`.
pub(crate) fn input_grad<T: Float>(dy: &[T], w: &[T], g: &ConvGeometry) -> Vec<T> {
    let tiles = plan(g, rayon::current_num_threads());
    let tasks = by_input_planes(&tiles);
    let mut dx: Vec<T> = zeros(g.x_dims().iter().product());
    let out = SharedMut::new(&mut dx);
    let (k, hw) = (g.k_rows(), g.in_plane());
    let group_planes = g.cin_g() * hw;
    for_each_item(&tasks, |scratch, task, threads| {
        for tile in task.iter() {
            let single = tile.single_image();
            let (col, tmp) = scratch.buffers(k * tile.cols(), g.cout_g() * tile.cols());
            let dyc = out_columns(dy, g, tile, tmp);
            let wt = group_weight(w, g, tile.group).t();
            let offset = |n: usize| n * g.cin * hw + tile.group * group_planes;
            if let (Some(n), true) = (single, g.is_pointwise()) {
                // SAFETY: this task alone owns the group's planes of image n; within them
                // the tile's pixel range is written once.
                let dst = unsafe {
                    MatMut::from_raw(
                        out.ptr().add(offset(n) + tile.pix.start),
                        k,
                        tile.cols(),
                        hw,
                        1,
                    )
                };
                matmul(dst, wt, dyc, false, threads);
                continue;
            }
            matmul(
                MatMut::new(col, k, tile.cols(), tile.cols(), 1),
                wt,
                dyc,
                false,
                threads,
            );
            for (i, n) in tile.imgs.clone().enumerate() {
                // SAFETY: tasks own disjoint (group, images), hence disjoint planes.
                let planes = unsafe { out.slice(offset(n), group_planes) };
                let block = Block {
                    pix: tile.pix.clone(),
                    ld: tile.cols(),
                    offset: i * tile.pix.len(),
                };
                col2im(col, g, &block, planes);
            }
        }
    });
    dx
}

/// `dw` for `y = conv2d(x, w)` given `dy`. Each worker sums its share of the tiles into its
/// own buffer; the buffers are added at the end.
pub(crate) fn weight_grad<T: Float>(dy: &[T], x: &[T], g: &ConvGeometry) -> Vec<T> {
    let threads = rayon::current_num_threads();
    let tiles = plan(g, threads);
    let (m, k) = (g.cout_g(), g.k_rows());
    let len = g.cout * k;
    let shares = split_even(tiles.len(), threads);
    let inner = if shares.len() < threads { threads } else { 1 };
    let partials: Vec<Vec<T>> = shares
        .into_par_iter()
        .map(|share| {
            let mut acc = zeros(len);
            let mut scratch = Scratch::default();
            for tile in &tiles[share] {
                let (col, tmp) = scratch.buffers(k * tile.cols(), m * tile.cols());
                let c = columns(x, g, tile, col);
                let dyc = out_columns(dy, g, tile, tmp);
                let dst = MatMut::new(
                    &mut acc[tile.group * m * k..(tile.group + 1) * m * k],
                    m,
                    k,
                    k,
                    1,
                );
                matmul(dst, dyc, c.t(), true, inner);
            }
            acc
        })
        .collect();
    let mut partials = partials.into_iter();
    let mut dw = partials.next().unwrap_or_else(|| zeros(len));
    for p in partials {
        crate::simd::add_assign(&mut dw, &p);
    }
    dw
}
