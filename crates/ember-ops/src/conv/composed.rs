//! Convolutions composed from candle ops whose gradients are right (pad, narrow, reshape,
//! stack, index_select, matmul): the path for CUDA and Metal tensors, and the reference the
//! CPU kernels are tested against. candle's own `conv2d` is avoided because it takes one
//! stride for both axes, runs groups as separate convs and its backward fails for stride > 1
//! on inputs whose height and width leave different remainders.

use candle_core::{Result, Tensor};

use super::geometry::{Conv2dParams, ConvGeometry};
use crate::strided::take_strided;

/// The input pixels kernel tap (`ki`, `kj`) sees at every output position: `[n, c, ho, wo]`.
fn tap(padded: &Tensor, g: &ConvGeometry, ki: usize, kj: usize) -> Result<Tensor> {
    let [sh, sw] = g.params.stride;
    let [dh, dw] = g.params.dilation;
    let rows = take_strided(padded, 2, ki * dh, g.ho, sh)?;
    take_strided(&rows, 3, kj * dw, g.wo, sw)
}

fn pad_input(x: &Tensor, g: &ConvGeometry) -> Result<Tensor> {
    let [ph, pw] = g.params.padding;
    x.pad_with_zeros(2, ph, ph)?.pad_with_zeros(3, pw, pw)
}

/// `conv2d` as im2col (one strided view per kernel tap) and a batched matmul per group.
pub fn conv2d(x: &Tensor, w: &Tensor, params: Conv2dParams) -> Result<Tensor> {
    let g = ConvGeometry::for_conv(x.dims(), w.dims(), params)?;
    let padded = pad_input(x, &g)?;
    let mut taps = Vec::with_capacity(g.kh * g.kw);
    for ki in 0..g.kh {
        for kj in 0..g.kw {
            taps.push(tap(&padded, &g, ki, kj)?);
        }
    }
    let groups = g.groups();
    let cols = Tensor::stack(&taps, 2)?.reshape((g.n, groups, g.k_rows(), g.out_plane()))?;
    let wm = w.reshape((1, groups, g.cout_g(), g.k_rows()))?;
    wm.broadcast_matmul(&cols)?
        .reshape((g.n, g.cout, g.ho, g.wo))
}

/// Depthwise `conv2d` (`groups == cin == cout`) as a sum of per-channel scaled taps.
pub fn depthwise_conv2d(x: &Tensor, w: &Tensor, params: Conv2dParams) -> Result<Tensor> {
    let g = ConvGeometry::for_conv(x.dims(), w.dims(), params)?;
    if !g.is_depthwise() {
        candle_core::bail!("depthwise_conv2d: needs groups == in channels == out channels, got {params:?} for weight {:?}", w.dims())
    }
    let padded = pad_input(x, &g)?;
    let mut y: Option<Tensor> = None;
    for ki in 0..g.kh {
        for kj in 0..g.kw {
            let wk = w
                .narrow(2, ki, 1)?
                .narrow(3, kj, 1)?
                .reshape((1, g.cout, 1, 1))?;
            let term = tap(&padded, &g, ki, kj)?.broadcast_mul(&wk)?;
            y = Some(match y {
                None => term,
                Some(acc) => (acc + term)?,
            });
        }
    }
    Ok(y.expect("a kernel has at least one tap"))
}

/// Inserts `stride - 1` zeros between the elements along `dim` (no trailing zeros).
fn dilate(x: &Tensor, dim: usize, stride: usize) -> Result<Tensor> {
    let len = x.dim(dim)?;
    if stride == 1 || len == 0 {
        return Ok(x.clone());
    }
    let spread = x
        .unsqueeze(dim + 1)?
        .pad_with_zeros(dim + 1, 0, stride - 1)?;
    let mut dims = x.dims().to_vec();
    dims[dim] = len * stride;
    spread.reshape(dims)?.narrow(dim, 0, (len - 1) * stride + 1)
}

/// Pads (positive) or crops (negative) `lo` elements at the start and `hi` at the end of `dim`.
fn pad_or_crop(x: &Tensor, dim: usize, lo: isize, hi: isize) -> Result<Tensor> {
    let x = x.pad_with_zeros(dim, lo.max(0) as usize, hi.max(0) as usize)?;
    let (cut_lo, cut_hi) = ((-lo).max(0) as usize, (-hi).max(0) as usize);
    let len = x.dim(dim)? - cut_lo - cut_hi;
    x.narrow(dim, cut_lo, len)
}

/// `conv_transpose2d` as a stride-1 convolution of the zero-dilated input with the flipped,
/// in/out-swapped kernel.
pub fn conv_transpose2d(
    x: &Tensor,
    w: &Tensor,
    params: Conv2dParams,
    output_padding: [usize; 2],
) -> Result<Tensor> {
    let g = ConvGeometry::for_transpose(x.dims(), w.dims(), params, output_padding)?;
    let mut up = x.clone();
    for axis in 0..2 {
        let dim = 2 + axis;
        let k = [g.kh, g.kw][axis];
        let reach = (params.dilation[axis] * (k - 1)) as isize;
        let p = params.padding[axis] as isize;
        up = dilate(&up, dim, params.stride[axis])?;
        up = pad_or_crop(
            &up,
            dim,
            reach - p,
            reach - p + output_padding[axis] as isize,
        )?;
    }
    let groups = g.groups();
    let (cin_t, cout_tg) = (g.cout, g.cin_g());
    let flip = |n: usize| Tensor::from_vec((0..n as u32).rev().collect::<Vec<_>>(), n, w.device());
    let flipped = w
        .index_select(&flip(g.kh)?, 2)?
        .index_select(&flip(g.kw)?, 3)?;
    let swapped = flipped
        .reshape((groups, cin_t / groups, cout_tg, g.kh, g.kw))?
        .transpose(1, 2)?
        .reshape((groups * cout_tg, cin_t / groups, g.kh, g.kw))?;
    let stride1 = Conv2dParams::default()
        .dilation(params.dilation)
        .groups(groups);
    conv2d(&up, &swapped, stride1)
}
