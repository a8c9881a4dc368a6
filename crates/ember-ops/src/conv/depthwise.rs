//! Depthwise convolution (`groups == cin == cout`) on CPU with direct kernels.
//!
//! candle runs a grouped conv as one conv per group plus a `cat`: hundreds of tiny GEMMs for
//! a MobileNet layer. Here each (image, channel) plane is first copied into a zero-padded
//! buffer split into `stride_w` column phases, so that every kernel tap of every output row
//! reads one contiguous run: the forward pass and the input gradient become vector
//! multiply-adds along the row and the weight gradient becomes dot products, with no bounds
//! checks and no strided loads in the inner loops.

use rayon::prelude::*;

use super::geometry::ConvGeometry;
use crate::cpu::{zeros, Float};
use crate::simd;

/// The padded, phase-split layout of one plane: `data[phase][row][q]` holds padded column
/// `q * stride_w + phase` of padded row `row`.
struct Phases {
    rows: usize,
    cols: usize,
    stride: usize,
}

impl Phases {
    fn new(g: &ConvGeometry) -> Self {
        let [sh, sw] = g.params.stride;
        let [dh, dw] = g.params.dilation;
        Self {
            rows: (g.ho - 1) * sh + (g.kh - 1) * dh + 1,
            cols: g.wo + (g.kw - 1) * dw / sw,
            stride: sw,
        }
    }

    fn len(&self) -> usize {
        self.stride * self.rows * self.cols
    }

    /// The run read by kernel tap (`ki`, `kj`) for output row `oh`.
    fn run(&self, g: &ConvGeometry, oh: usize, ki: usize, kj: usize) -> usize {
        let [sh, sw] = g.params.stride;
        let [dh, dw] = g.params.dilation;
        let (phase, q) = ((kj * dw) % sw, (kj * dw) / sw);
        (phase * self.rows + oh * sh + ki * dh) * self.cols + q
    }

    /// The padded column `c` of the layout, as (phase, q); `None` outside the buffer.
    fn locate(&self, c: usize) -> Option<(usize, usize)> {
        let q = c / self.stride;
        (q < self.cols).then_some((c % self.stride, q))
    }

    /// Copies one input plane into `buf`, zero-filling the padding.
    fn fill<T: Float>(&self, g: &ConvGeometry, plane: &[T], buf: &mut [T]) {
        let [ph, pw] = g.params.padding;
        for r in 0..self.rows {
            let src = r
                .checked_sub(ph)
                .filter(|&ih| ih < g.h)
                .map(|ih| &plane[ih * g.w..(ih + 1) * g.w]);
            for phase in 0..self.stride {
                let dst = &mut buf[(phase * self.rows + r) * self.cols..][..self.cols];
                match src {
                    None => dst.fill(T::zero()),
                    Some(src) => {
                        for (q, d) in dst.iter_mut().enumerate() {
                            let iw = (q * self.stride + phase)
                                .checked_sub(pw)
                                .filter(|&iw| iw < g.w);
                            *d = iw.map_or(T::zero(), |iw| src[iw]);
                        }
                    }
                }
            }
        }
    }

    /// Adds the interior of a padded, phase-split gradient buffer into an input plane.
    fn unfill<T: Float>(&self, g: &ConvGeometry, buf: &[T], plane: &mut [T]) {
        let [ph, pw] = g.params.padding;
        for ih in 0..g.h {
            let r = ih + ph;
            if r >= self.rows {
                break;
            }
            for iw in 0..g.w {
                if let Some((phase, q)) = self.locate(iw + pw) {
                    plane[ih * g.w + iw] = buf[(phase * self.rows + r) * self.cols + q];
                }
            }
        }
    }
}

/// `y = conv2d(x, w)` with one 2-d filter per channel.
pub(crate) fn forward<T: Float>(x: &[T], w: &[T], g: &ConvGeometry) -> Vec<T> {
    let layout = Phases::new(g);
    let (taps, plane_in, plane_out) = (g.kh * g.kw, g.in_plane(), g.out_plane());
    let mut y: Vec<T> = zeros(g.y_dims().iter().product());
    y.par_chunks_mut(plane_out).enumerate().for_each_init(
        || zeros(layout.len()),
        |buf, (plane, y)| {
            let c = plane % g.cin;
            layout.fill(g, &x[plane * plane_in..][..plane_in], buf);
            let wc = &w[c * taps..][..taps];
            for (oh, row) in y.chunks_exact_mut(g.wo).enumerate() {
                for ki in 0..g.kh {
                    for kj in 0..g.kw {
                        let src = &buf[layout.run(g, oh, ki, kj)..][..g.wo];
                        simd::axpy(row, wc[ki * g.kw + kj], src);
                    }
                }
            }
        },
    );
    y
}

/// `dx` for the depthwise forward given `dy`.
pub(crate) fn input_grad<T: Float>(dy: &[T], w: &[T], g: &ConvGeometry) -> Vec<T> {
    let layout = Phases::new(g);
    let (taps, plane_in, plane_out) = (g.kh * g.kw, g.in_plane(), g.out_plane());
    let mut dx: Vec<T> = zeros(g.x_dims().iter().product());
    dx.par_chunks_mut(plane_in).enumerate().for_each_init(
        || zeros(layout.len()),
        |buf, (plane, dx)| {
            let c = plane % g.cin;
            buf.fill(T::zero());
            let wc = &w[c * taps..][..taps];
            let dyp = &dy[plane * plane_out..][..plane_out];
            for (oh, row) in dyp.chunks_exact(g.wo).enumerate() {
                for ki in 0..g.kh {
                    for kj in 0..g.kw {
                        let dst = &mut buf[layout.run(g, oh, ki, kj)..][..g.wo];
                        simd::axpy(dst, wc[ki * g.kw + kj], row);
                    }
                }
            }
            layout.unfill(g, buf, dx);
        },
    );
    dx
}

/// `dw` for the depthwise forward given `dy`: per channel, a dot product per tap summed
/// over images and output rows.
pub(crate) fn weight_grad<T: Float>(dy: &[T], x: &[T], g: &ConvGeometry) -> Vec<T> {
    let layout = Phases::new(g);
    let (taps, plane_in, plane_out) = (g.kh * g.kw, g.in_plane(), g.out_plane());
    let mut dw = zeros(g.cout * taps);
    dw.par_chunks_mut(taps).enumerate().for_each_init(
        || zeros(layout.len()),
        |buf, (c, dwc)| {
            for n in 0..g.n {
                let plane = n * g.cin + c;
                layout.fill(g, &x[plane * plane_in..][..plane_in], buf);
                let dyp = &dy[plane * plane_out..][..plane_out];
                for (oh, row) in dyp.chunks_exact(g.wo).enumerate() {
                    for ki in 0..g.kh {
                        for kj in 0..g.kw {
                            let src = &buf[layout.run(g, oh, ki, kj)..][..g.wo];
                            let acc = &mut dwc[ki * g.kw + kj];
                            *acc += simd::dot(row, src);
                        }
                    }
                }
            }
        },
    );
    dw
}
