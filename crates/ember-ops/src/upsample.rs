//! Bilinear and nearest resizing of the last two dims with PyTorch's index arithmetic
//! (`upsample_bilinear2d`, `upsample_nearest2d`, `antialias=False`), forward and backward.
//! candle's `upsample_bilinear2d` has no backward and its nearest has none for non-integer
//! factors. Both are separable resamplings ([`crate::resample`]).

use candle_core::{DType, Result, Tensor};
use num_traits::Float;

use crate::pool;
use crate::resample::{resample, AxisMap};

/// The output size, given directly or as scale factors (`F.interpolate(size=...)` or
/// `F.interpolate(scale_factor=...)`; as in PyTorch, given factors are used for the source
/// coordinates as they are, not recomputed from the sizes).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Resize {
    Size(usize, usize),
    Scale(f64, f64),
}

impl Resize {
    /// `(output size, scale factor if given)` per axis.
    fn axes(self, h: usize, w: usize) -> Result<[(usize, Option<f64>); 2]> {
        let axes = match self {
            Resize::Size(oh, ow) => [(oh, None), (ow, None)],
            Resize::Scale(sh, sw) => {
                if !(sh > 0.0 && sw > 0.0) {
                    candle_core::bail!("upsample: scale factors must be positive, got ({sh}, {sw})")
                }
                [
                    ((h as f64 * sh).floor() as usize, Some(sh)),
                    ((w as f64 * sw).floor() as usize, Some(sw)),
                ]
            }
        };
        if axes.iter().any(|a| a.0 == 0) || h == 0 || w == 0 {
            candle_core::bail!(
                "upsample: input {h}x{w} and output {}x{} must be non-empty",
                axes[0].0,
                axes[1].0
            )
        }
        Ok(axes)
    }
}

/// One bilinear axis, computed in `F` (f32 for f32 tensors, as PyTorch's `opmath_t`).
fn bilinear_axis<F: Float>(
    input: usize,
    output: usize,
    align_corners: bool,
    factor: Option<f64>,
) -> AxisMap {
    let f = |v: f64| F::from(v).unwrap();
    let scale = if align_corners {
        if output > 1 {
            f((input - 1) as f64) / f((output - 1) as f64)
        } else {
            F::zero()
        }
    } else {
        match factor {
            Some(s) => F::one() / f(s),
            None => f(input as f64) / f(output as f64),
        }
    };
    AxisMap::new(input, output, |o| {
        let dst = f(o as f64);
        let src = if align_corners {
            scale * dst
        } else {
            (scale * (dst + f(0.5)) - f(0.5)).max(F::zero())
        };
        let i0 = (src.to_usize().unwrap()).min(input - 1);
        let i1 = if i0 < input - 1 { i0 + 1 } else { i0 };
        let l1 = src - f(i0 as f64);
        let l0 = F::one() - l1;
        vec![(i0, l0.to_f64().unwrap()), (i1, l1.to_f64().unwrap())]
    })
}

/// One nearest axis (PyTorch's legacy `nearest`: `floor(dst * in / out)`, in f32).
fn nearest_axis(input: usize, output: usize, factor: Option<f64>) -> AxisMap {
    AxisMap::new(input, output, |o| {
        let i = if output == input {
            o
        } else if output == 2 * input {
            o >> 1
        } else {
            let scale = match factor {
                Some(s) => 1.0 / s as f32,
                None => input as f32 / output as f32,
            };
            ((o as f32 * scale).floor() as usize).min(input - 1)
        };
        vec![(i, 1.0)]
    })
}

fn bilinear_maps(x: &Tensor, size: Resize, align_corners: bool) -> Result<(AxisMap, AxisMap)> {
    let (_, h, w) = pool_planes(x)?;
    let [(oh, fh), (ow, fw)] = size.axes(h, w)?;
    Ok(if x.dtype() == DType::F64 {
        (
            bilinear_axis::<f64>(h, oh, align_corners, fh),
            bilinear_axis::<f64>(w, ow, align_corners, fw),
        )
    } else {
        (
            bilinear_axis::<f32>(h, oh, align_corners, fh),
            bilinear_axis::<f32>(w, ow, align_corners, fw),
        )
    })
}

fn nearest_maps(x: &Tensor, size: Resize) -> Result<(AxisMap, AxisMap)> {
    let (_, h, w) = pool_planes(x)?;
    let [(oh, fh), (ow, fw)] = size.axes(h, w)?;
    Ok((nearest_axis(h, oh, fh), nearest_axis(w, ow, fw)))
}

fn pool_planes(x: &Tensor) -> Result<(usize, usize, usize)> {
    pool::planes("upsample", x)
}

/// `F.interpolate(x, size | scale_factor, mode="bilinear", align_corners)`.
pub fn upsample_bilinear2d(x: &Tensor, size: Resize, align_corners: bool) -> Result<Tensor> {
    let (rows, cols) = bilinear_maps(x, size, align_corners)?;
    resample(x, rows, cols)
}

/// `F.interpolate(x, size | scale_factor, mode="nearest")`.
pub fn upsample_nearest2d(x: &Tensor, size: Resize) -> Result<Tensor> {
    let (rows, cols) = nearest_maps(x, size)?;
    resample(x, rows, cols)
}

/// The same ops through dense matrices and candle matmuls.
pub mod composed {
    use super::*;

    pub fn upsample_bilinear2d(x: &Tensor, size: Resize, align_corners: bool) -> Result<Tensor> {
        let (rows, cols) = bilinear_maps(x, size, align_corners)?;
        crate::resample::composed(x, &rows, &cols)
    }

    pub fn upsample_nearest2d(x: &Tensor, size: Resize) -> Result<Tensor> {
        let (rows, cols) = nearest_maps(x, size)?;
        crate::resample::composed(x, &rows, &cols)
    }
}
