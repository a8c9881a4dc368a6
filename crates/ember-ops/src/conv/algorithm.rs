//! Which kernel runs a convolution: direct loops for depthwise, GEMM over im2col tiles for
//! the rest; and the input gradient of a stride-1 convolution as a forward convolution.
//!
//! Two alternatives were measured and dropped. Building the whole batch's im2col matrix
//! and splitting output channels across threads (so that each weight row is packed once) was
//! 10-40% slower than the tiles even for 512 channels on 4x4 maps. Winograd F(2x2, 3x3) was
//! tried for 3x3 stride-1 layers (2.25x fewer multiplies) and
//! measured 1.6x slower than the GEMM path at 64 channels on 28x28 maps: in NCHW the tile
//! transforms run on rows of 14 tiles and cost more than the multiplies they save.

use rayon::prelude::*;

use super::geometry::{Conv2dParams, ConvGeometry};
use super::{depthwise, gemm_conv};
use crate::cpu::Float;

pub(crate) fn forward<T: Float>(x: &[T], w: &[T], g: &ConvGeometry) -> Vec<T> {
    if g.is_depthwise() {
        depthwise::forward(x, w, g)
    } else {
        gemm_conv::forward(x, w, g)
    }
}

pub(crate) fn input_grad<T: Float>(dy: &[T], w: &[T], g: &ConvGeometry) -> Vec<T> {
    if g.is_depthwise() {
        depthwise::input_grad(dy, w, g)
    } else if let Some((dual, flipped)) = input_grad_as_forward(w, g) {
        forward(dy, &flipped, &dual)
    } else {
        gemm_conv::input_grad(dy, w, g)
    }
}

pub(crate) fn weight_grad<T: Float>(dy: &[T], x: &[T], g: &ConvGeometry) -> Vec<T> {
    if g.is_depthwise() {
        depthwise::weight_grad(dy, x, g)
    } else {
        gemm_conv::weight_grad(dy, x, g)
    }
}

/// For stride 1 the input gradient is itself a forward convolution: `dy` padded by
/// `dilation * (k - 1) - padding`, with the kernel flipped and its in/out channels swapped.
/// Running it that way makes it a gather (im2col) with a `cout * kh * kw`-deep GEMM instead
/// of a `cout`-deep GEMM followed by a scatter-add (col2im), as fast as the forward pass.
fn input_grad_as_forward<T: Float>(w: &[T], g: &ConvGeometry) -> Option<(ConvGeometry, Vec<T>)> {
    let p = g.params;
    if p.stride != [1, 1] {
        return None;
    }
    let reach = [p.dilation[0] * (g.kh - 1), p.dilation[1] * (g.kw - 1)];
    let padding = [
        reach[0].checked_sub(p.padding[0])?,
        reach[1].checked_sub(p.padding[1])?,
    ];
    let params = Conv2dParams { padding, ..p };
    let groups = p.groups;
    let (cout_g, cin_g) = (g.cout_g(), g.cin_g());
    let flipped_dims = [groups * cin_g, cout_g, g.kh, g.kw];
    let dual = ConvGeometry::for_conv(&[g.n, g.cout, g.ho, g.wo], &flipped_dims, params).ok()?;
    if (dual.ho, dual.wo) != (g.h, g.w) {
        return None; // a transposed conv with output padding
    }
    let taps = g.kh * g.kw;
    let mut flipped = vec![T::zero(); w.len()];
    // Row (group, ci) of the dual weight holds, for every co, the taps of w[co, ci] reversed.
    flipped
        .par_chunks_mut(cout_g * taps)
        .enumerate()
        .for_each(|(row, dst)| {
            let (group, ci) = (row / cin_g, row % cin_g);
            for co in 0..cout_g {
                let src = &w[((group * cout_g + co) * cin_g + ci) * taps..][..taps];
                for (d, &v) in dst[co * taps..(co + 1) * taps]
                    .iter_mut()
                    .zip(src.iter().rev())
                {
                    *d = v;
                }
            }
        });
    Some((dual, flipped))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conv::Conv2dParams;

    #[test]
    fn the_input_gradient_as_a_forward_conv_matches_col2im() {
        let cases = [
            (
                [2, 4, 9, 7],
                [6, 4, 3, 3],
                Conv2dParams::default().padding(1),
            ),
            (
                [1, 6, 8, 11],
                [6, 2, 3, 2],
                Conv2dParams::default()
                    .padding((2, 0))
                    .dilation((2, 1))
                    .groups(3),
            ),
            ([3, 2, 5, 5], [3, 2, 1, 1], Conv2dParams::default()),
            (
                [1, 3, 20, 18],
                [5, 3, 3, 3],
                Conv2dParams::default().padding((0, 1)),
            ),
        ];
        for (xd, wd, p) in cases {
            let g = ConvGeometry::for_conv(&xd, &wd, p).unwrap();
            let w: Vec<f64> = (0..g.w_dims().iter().product())
                .map(|i| ((i * 104729) % 89) as f64 / 89.0 - 0.5)
                .collect();
            let dy: Vec<f64> = (0..g.y_dims().iter().product())
                .map(|i| ((i * 31) % 53) as f64 / 53.0 - 0.5)
                .collect();
            assert!(input_grad_as_forward(&w, &g).is_some(), "{xd:?} {p:?}");
            let (a, b) = (input_grad(&dy, &w, &g), gemm_conv::input_grad(&dy, &w, &g));
            assert!(
                a.iter().zip(&b).all(|(x, y)| (x - y).abs() < 1e-12),
                "{xd:?} {p:?}"
            );
        }
        // Padding beyond the kernel's reach, and a stride: no dual.
        let g = ConvGeometry::for_conv(
            &[1, 2, 6, 6],
            &[2, 2, 3, 3],
            Conv2dParams::default().padding(3),
        )
        .unwrap();
        assert!(input_grad_as_forward(&[0.0f64; 36], &g).is_none());
        let g = ConvGeometry::for_conv(
            &[1, 2, 6, 6],
            &[2, 2, 3, 3],
            Conv2dParams::default().stride(2),
        )
        .unwrap();
        assert!(input_grad_as_forward(&[0.0f64; 36], &g).is_none());
    }
}
