//! im2col and its adjoint col2im for one image and one group, over a range of output pixels.
//!
//! The column matrix has `k_rows = cin_g * kh * kw` rows (ordered channel, kernel row,
//! kernel column, matching the weight layout) and one column per output pixel. Both walk the
//! output row by row so that each (kernel tap, output row) is one contiguous copy (or add)
//! when the stride is 1, with the zero padding handled at the segment ends.

use std::ops::Range;

use super::geometry::ConvGeometry;
use crate::cpu::Float;
use crate::simd;

/// Where one image's columns sit in a column matrix: its output pixels `pix`, as the columns
/// `[offset, offset + pix.len())` of a matrix with row stride `ld`.
#[derive(Debug, Clone)]
pub(crate) struct Block {
    pub pix: Range<usize>,
    pub ld: usize,
    pub offset: usize,
}

impl Block {
    /// The element range of matrix row `r` that holds this block.
    fn row(&self, r: usize) -> Range<usize> {
        let start = r * self.ld + self.offset;
        start..start + self.pix.len()
    }
}

/// One run of output pixels on a single output row for a fixed kernel tap.
struct Segment {
    /// Position of the first pixel in the column range.
    col: usize,
    /// Number of pixels.
    len: usize,
    /// Input row, if inside the image.
    ih: Option<usize>,
    /// Pixels `[valid.start, valid.end)` of the segment read the input at columns
    /// `iw0 + i * stride` (i counted from `valid.start`); the rest read padding.
    valid: Range<usize>,
    iw0: usize,
}

/// Calls `f` for every segment of kernel tap (`ki`, `kj`) over the output pixels `pix`.
fn for_each_segment(
    g: &ConvGeometry,
    pix: &Range<usize>,
    ki: usize,
    kj: usize,
    mut f: impl FnMut(Segment),
) {
    if pix.is_empty() {
        return;
    }
    let [sh, sw] = g.params.stride;
    let [ph, pw] = g.params.padding;
    let [dh, dw] = g.params.dilation;
    // Output columns whose input column lies inside the image: 0 <= ow*sw + kj*dw - pw < w.
    let shift = (kj * dw) as isize - pw as isize;
    let ow_lo = (-shift).max(0) as usize;
    let ow_lo = ow_lo.div_ceil(sw);
    let ow_hi = if (g.w as isize) <= shift {
        0
    } else {
        ((g.w as isize - 1 - shift) as usize / sw + 1).min(g.wo)
    };
    let (first, last) = (pix.start / g.wo, (pix.end - 1) / g.wo);
    for oh in first..=last {
        let a = if oh == first { pix.start % g.wo } else { 0 };
        let b = if oh == last {
            (pix.end - 1) % g.wo + 1
        } else {
            g.wo
        };
        let ih = (oh * sh + ki * dh).checked_sub(ph).filter(|&ih| ih < g.h);
        let lo = a.max(ow_lo).min(b);
        let hi = b.min(ow_hi).max(lo);
        f(Segment {
            col: oh * g.wo + a - pix.start,
            len: b - a,
            ih,
            valid: (lo - a)..(hi - a),
            iw0: if hi > lo {
                ((lo * sw) as isize + shift) as usize
            } else {
                0
            },
        });
    }
}

/// Output rows narrower than this are gathered through an index table: per-run bookkeeping
/// (bounds, a copy call) costs more than the copy itself on 4x4 and 7x7 maps.
const MIN_RUN: usize = 16;

/// Fills `block` of `col` with the im2col matrix of one image's group (`x` holds its `cin_g`
/// planes).
pub(crate) fn im2col<T: Float>(x: &[T], g: &ConvGeometry, block: &Block, col: &mut [T]) {
    if g.wo < MIN_RUN {
        im2col_by_table(x, g, block, col)
    } else if shifts_apply(g, &block.pix) {
        im2col_by_shifts(x, g, block, col)
    } else {
        im2col_by_runs(x, g, block, col)
    }
}

/// Stride 1, output as wide as the input ("same" padding), whole output rows.
fn shifts_apply(g: &ConvGeometry, pix: &Range<usize>) -> bool {
    g.params.stride == [1, 1]
        && g.wo == g.w
        && pix.start.is_multiple_of(g.wo)
        && pix.end.is_multiple_of(g.wo)
}

/// For [`shifts_apply`] geometries each kernel tap's im2col row is the input plane shifted
/// by whole rows and a few columns: one block copy, then zeros where the shifted rows and
/// columns fall into the padding, instead of one copy per output row (`perf` on a 64->64
/// 28x28 conv, forward and backward: im2col from about 13% of the time to about 5%).
fn im2col_by_shifts<T: Float>(x: &[T], g: &ConvGeometry, block: &Block, col: &mut [T]) {
    let pix = &block.pix;
    let (w, h, plane) = (g.w as isize, g.h as isize, g.in_plane() as isize);
    let [ph, pw] = g.params.padding;
    let [dh, dw] = g.params.dilation;
    let (oh0, oh1) = ((pix.start / g.wo) as isize, (pix.end / g.wo) as isize);
    for c in 0..g.cin_g() {
        let xc = &x[c * g.in_plane()..(c + 1) * g.in_plane()];
        for ki in 0..g.kh {
            for kj in 0..g.kw {
                let row = (c * g.kh + ki) * g.kw + kj;
                let dst = &mut col[block.row(row)];
                // Output (oh, ow) reads input (oh + dr, ow + dc); rows v0..v1 are inside.
                let (dr, dc) = (
                    (ki * dh) as isize - ph as isize,
                    (kj * dw) as isize - pw as isize,
                );
                let v0 = (-dr).clamp(oh0, oh1);
                let v1 = (h - dr).clamp(v0, oh1);
                let (d0, d1) = (((v0 - oh0) * w) as usize, ((v1 - oh0) * w) as usize);
                dst[..d0].fill(T::zero());
                dst[d1..].fill(T::zero());
                // The valid rows as one run of the plane read as a single line, clipped to it...
                let s0 = (v0 + dr) * w + dc;
                let len = d1 as isize - d0 as isize;
                let (lo, hi) = ((-s0).clamp(0, len), (plane - s0).clamp(0, len));
                let block = &mut dst[d0..d1];
                block[..lo as usize].fill(T::zero());
                block[hi.max(lo) as usize..].fill(T::zero());
                if hi > lo {
                    block[lo as usize..hi as usize]
                        .copy_from_slice(&xc[(s0 + lo) as usize..(s0 + hi) as usize]);
                }
                // ...then zero the columns that wrapped in from the neighbouring rows.
                let pad = dc.unsigned_abs().min(g.w);
                if pad > 0 {
                    for out in block.chunks_exact_mut(g.w) {
                        if dc < 0 {
                            out[..pad].fill(T::zero());
                        } else {
                            out[g.w - pad..].fill(T::zero());
                        }
                    }
                }
            }
        }
    }
}

/// Adds `block` of `col` back onto one image's group of input planes `dx` (the adjoint of
/// [`im2col`]).
pub(crate) fn col2im<T: Float>(col: &[T], g: &ConvGeometry, block: &Block, dx: &mut [T]) {
    if g.wo < MIN_RUN {
        col2im_by_table(col, g, block, dx)
    } else {
        col2im_by_runs(col, g, block, dx)
    }
}

/// For every kernel tap and output pixel in `pix`, the input element it reads within a
/// plane, or `PAD` for zero padding.
fn gather_table(g: &ConvGeometry, pix: &Range<usize>) -> Vec<u32> {
    let mut table = vec![PAD; g.kh * g.kw * pix.len()];
    for ki in 0..g.kh {
        for kj in 0..g.kw {
            let row = &mut table[(ki * g.kw + kj) * pix.len()..][..pix.len()];
            for_each_segment(g, pix, ki, kj, |s| {
                if let Some(ih) = s.ih {
                    let sw = g.params.stride[1];
                    for (i, t) in row[s.col + s.valid.start..s.col + s.valid.end]
                        .iter_mut()
                        .enumerate()
                    {
                        *t = (ih * g.w + s.iw0 + i * sw) as u32;
                    }
                }
            });
        }
    }
    table
}

const PAD: u32 = u32::MAX;

fn im2col_by_table<T: Float>(x: &[T], g: &ConvGeometry, block: &Block, col: &mut [T]) {
    let pix = &block.pix;
    let (plane, taps, n) = (g.in_plane(), g.kh * g.kw, pix.len());
    // Padding reads a zero placed after a copy of the plane: a gather without branches.
    let table: Vec<u32> = gather_table(g, pix)
        .into_iter()
        .map(|i| if i == PAD { plane as u32 } else { i })
        .collect();
    let mut padded = vec![T::zero(); plane + 1];
    for c in 0..g.cin_g() {
        padded[..plane].copy_from_slice(&x[c * plane..(c + 1) * plane]);
        for tap in 0..taps {
            let dst = &mut col[block.row(c * taps + tap)];
            for (d, &i) in dst.iter_mut().zip(&table[tap * n..(tap + 1) * n]) {
                *d = padded[i as usize];
            }
        }
    }
}

fn col2im_by_table<T: Float>(col: &[T], g: &ConvGeometry, block: &Block, dx: &mut [T]) {
    let pix = &block.pix;
    let table = gather_table(g, pix);
    let (plane, taps, n) = (g.in_plane(), g.kh * g.kw, pix.len());
    for c in 0..g.cin_g() {
        let dxc = &mut dx[c * plane..(c + 1) * plane];
        for tap in 0..taps {
            let src = &col[block.row(c * taps + tap)];
            for (&v, &i) in src.iter().zip(&table[tap * n..(tap + 1) * n]) {
                if i != PAD {
                    dxc[i as usize] += v;
                }
            }
        }
    }
}

fn im2col_by_runs<T: Float>(x: &[T], g: &ConvGeometry, block: &Block, col: &mut [T]) {
    let pix = &block.pix;
    let sw = g.params.stride[1];
    let plane = g.in_plane();
    for c in 0..g.cin_g() {
        let xc = &x[c * plane..(c + 1) * plane];
        for ki in 0..g.kh {
            for kj in 0..g.kw {
                let row = (c * g.kh + ki) * g.kw + kj;
                let dst_row = &mut col[block.row(row)];
                for_each_segment(g, pix, ki, kj, |s| {
                    let dst = &mut dst_row[s.col..s.col + s.len];
                    let Some(ih) = s.ih else {
                        dst.fill(T::zero());
                        return;
                    };
                    dst[..s.valid.start].fill(T::zero());
                    dst[s.valid.end..].fill(T::zero());
                    let src = &xc[ih * g.w..(ih + 1) * g.w];
                    let dst = &mut dst[s.valid.clone()];
                    if sw == 1 {
                        dst.copy_from_slice(&src[s.iw0..s.iw0 + dst.len()]);
                    } else {
                        for (i, d) in dst.iter_mut().enumerate() {
                            *d = src[s.iw0 + i * sw];
                        }
                    }
                });
            }
        }
    }
}

fn col2im_by_runs<T: Float>(col: &[T], g: &ConvGeometry, block: &Block, dx: &mut [T]) {
    let pix = &block.pix;
    let sw = g.params.stride[1];
    let plane = g.in_plane();
    for c in 0..g.cin_g() {
        let dxc = &mut dx[c * plane..(c + 1) * plane];
        for ki in 0..g.kh {
            for kj in 0..g.kw {
                let row = (c * g.kh + ki) * g.kw + kj;
                let src_row = &col[block.row(row)];
                for_each_segment(g, pix, ki, kj, |s| {
                    let Some(ih) = s.ih else { return };
                    let src = &src_row[s.col + s.valid.start..s.col + s.valid.end];
                    let dst = &mut dxc[ih * g.w..(ih + 1) * g.w];
                    if sw == 1 {
                        simd::add_assign(&mut dst[s.iw0..s.iw0 + src.len()], src);
                    } else {
                        for (i, &v) in src.iter().enumerate() {
                            dst[s.iw0 + i * sw] += v;
                        }
                    }
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conv::Conv2dParams;

    /// im2col by definition, one element at a time.
    fn naive(x: &[f64], g: &ConvGeometry) -> Vec<f64> {
        let [sh, sw] = g.params.stride;
        let [ph, pw] = g.params.padding;
        let [dh, dw] = g.params.dilation;
        let p = g.out_plane();
        let mut col = vec![0.0; g.k_rows() * p];
        for c in 0..g.cin_g() {
            for ki in 0..g.kh {
                for kj in 0..g.kw {
                    let row = (c * g.kh + ki) * g.kw + kj;
                    for oh in 0..g.ho {
                        for ow in 0..g.wo {
                            let ih = (oh * sh + ki * dh) as isize - ph as isize;
                            let iw = (ow * sw + kj * dw) as isize - pw as isize;
                            if ih >= 0 && iw >= 0 && (ih as usize) < g.h && (iw as usize) < g.w {
                                col[row * p + oh * g.wo + ow] =
                                    x[c * g.h * g.w + ih as usize * g.w + iw as usize];
                            }
                        }
                    }
                }
            }
        }
        col
    }

    #[test]
    fn im2col_matches_the_definition_on_any_pixel_range() {
        let mut shifted = 0;
        let cases = [
            (
                [1, 2, 5, 7],
                [3, 2, 3, 3],
                Conv2dParams::default().padding(1),
            ),
            (
                [1, 1, 8, 7],
                [1, 1, 3, 2],
                Conv2dParams::default().stride(2).padding((1, 0)),
            ),
            (
                [1, 2, 9, 6],
                [2, 2, 2, 3],
                Conv2dParams::default()
                    .stride((1, 2))
                    .dilation((3, 2))
                    .padding((2, 1)),
            ),
            (
                [1, 1, 4, 4],
                [1, 1, 1, 1],
                Conv2dParams::default().stride(3),
            ),
            (
                [1, 1, 3, 2],
                [1, 1, 3, 5],
                Conv2dParams::default().padding((1, 2)),
            ),
            (
                [1, 2, 20, 19],
                [1, 2, 3, 3],
                Conv2dParams::default().padding(2).dilation(2),
            ),
        ];
        for (xd, wd, p) in cases {
            let g = ConvGeometry::for_conv(&xd, &wd, p).unwrap();
            let x: Vec<f64> = (0..g.cin * g.in_plane()).map(|i| i as f64 + 1.0).collect();
            let want = naive(&x, &g);
            let total = g.out_plane();
            for pix in [0..total, 1..total, 0..1, total / 3..total - 1, g.wo..total] {
                let ld = pix.len() + 2;
                let mut col = vec![-1.0; g.k_rows() * ld];
                let mut by_table = col.clone();
                let block = Block {
                    pix: pix.clone(),
                    ld,
                    offset: 1,
                };
                im2col_by_runs(&x, &g, &block, &mut col);
                im2col_by_table(&x, &g, &block, &mut by_table);
                assert_eq!(col, by_table);
                if shifts_apply(&g, &pix) {
                    let mut by_shifts = col.iter().map(|_| -1.0).collect::<Vec<_>>();
                    im2col_by_shifts(&x, &g, &block, &mut by_shifts);
                    assert_eq!(col, by_shifts, "{xd:?} {wd:?} {pix:?}");
                    shifted += 1;
                }
                for r in 0..g.k_rows() {
                    for (i, p) in pix.clone().enumerate() {
                        assert_eq!(
                            col[r * ld + 1 + i],
                            want[r * total + p],
                            "{p:?} row {r} pix {p}"
                        );
                    }
                }
                // col2im is the adjoint: <im2col(x), c> == <x, col2im(c)>.
                let c: Vec<f64> = (0..col.len()).map(|i| ((i * 7) % 11) as f64).collect();
                let lhs: f64 = (0..g.k_rows())
                    .flat_map(|r| (0..pix.len()).map(move |i| (r, i)))
                    .map(|(r, i)| col[r * ld + 1 + i] * c[r * ld + 1 + i])
                    .sum();
                let mut dx = vec![0.0; x.len()];
                col2im_by_runs(&c, &g, &block, &mut dx);
                let mut dx_table = vec![0.0; x.len()];
                col2im_by_table(&c, &g, &block, &mut dx_table);
                assert_eq!(dx, dx_table);
                let rhs: f64 = x.iter().zip(&dx).map(|(a, b)| a * b).sum();
                assert!((lhs - rhs).abs() < 1e-9, "adjoint {lhs} vs {rhs}");
            }
        }
        assert!(shifted >= 4, "the shifted-plane path ran {shifted} times");
    }
}
