//! Separable linear resampling of the last two dims: `y = R x C^T` per plane, where `R`
//! (`[out_h, in_h]`) and `C` (`[out_w, in_w]`) are sparse per-axis weight maps.
//!
//! Average pooling (any padding, ceil mode, `count_include_pad`), adaptive average pooling,
//! bilinear and nearest upsampling are all of this form: their weights are products of a
//! row weight and a column weight. So one kernel pair (the map and its adjoint, which is the
//! backward) serves all four ops, and each op only builds its [`AxisMap`]s. The composed
//! path multiplies by the dense maps (two batched matmuls).

use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp1, DType, Device, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use crate::cpu::{float_kernel, in_kernel_precision, zeros, Float};
use crate::simd;

/// For each output index along one axis, the input indices it reads and their weights
/// (compressed rows).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct AxisMap {
    input: usize,
    starts: Vec<usize>,
    index: Vec<usize>,
    weight: Vec<f64>,
}

impl AxisMap {
    /// `taps(o)` lists `(input index, weight)` for output `o`.
    pub fn new(
        input: usize,
        output: usize,
        mut taps: impl FnMut(usize) -> Vec<(usize, f64)>,
    ) -> Self {
        let mut map = Self {
            input,
            starts: vec![0],
            index: Vec::new(),
            weight: Vec::new(),
        };
        for o in 0..output {
            for (i, w) in taps(o) {
                debug_assert!(i < input, "tap {i} outside input of {input}");
                map.index.push(i);
                map.weight.push(w);
            }
            map.starts.push(map.index.len());
        }
        map
    }

    pub fn output(&self) -> usize {
        self.starts.len() - 1
    }

    fn taps(&self, o: usize) -> std::ops::Range<usize> {
        self.starts[o]..self.starts[o + 1]
    }

    /// The map as a dense `[output, input]` matrix.
    pub fn dense(&self, dtype: DType, device: &Device) -> Result<Tensor> {
        let mut m = vec![0.0; self.output() * self.input];
        for o in 0..self.output() {
            for t in self.taps(o) {
                m[o * self.input + self.index[t]] += self.weight[t];
            }
        }
        Tensor::from_vec(m, (self.output(), self.input), device)?.to_dtype(dtype)
    }
}

/// Applies the maps to the last two dims of `x` (`[..., rows.input, cols.input]`).
pub(crate) fn resample(x: &Tensor, rows: AxisMap, cols: AxisMap) -> Result<Tensor> {
    let dims = x.dims();
    if dims.len() < 2 || dims[dims.len() - 2..] != [rows.input, cols.input] {
        candle_core::bail!(
            "resample: expected [..., {}, {}], got {dims:?}",
            rows.input,
            cols.input
        )
    }
    if !x.device().is_cpu() {
        return composed(x, &rows, &cols);
    }
    let op = Resample {
        rows: Arc::new(rows),
        cols: Arc::new(cols),
        adjoint: false,
    };
    in_kernel_precision(&[x], |t| t[0].contiguous()?.apply_op1(op))
}

/// `R x C^T` with dense maps and two batched matmuls.
pub(crate) fn composed(x: &Tensor, rows: &AxisMap, cols: &AxisMap) -> Result<Tensor> {
    let (r, c) = (
        rows.dense(x.dtype(), x.device())?,
        cols.dense(x.dtype(), x.device())?,
    );
    r.broadcast_matmul(x)?.broadcast_matmul(&c.t()?)
}

/// The forward map (`adjoint == false`, `[.., in_h, in_w] -> [.., out_h, out_w]`) or its
/// adjoint (the backward, `[.., out_h, out_w] -> [.., in_h, in_w]`).
struct Resample {
    rows: Arc<AxisMap>,
    cols: Arc<AxisMap>,
    adjoint: bool,
}

impl Resample {
    fn shapes(&self) -> ([usize; 2], [usize; 2]) {
        let input = [self.rows.input, self.cols.input];
        let output = [self.rows.output(), self.cols.output()];
        if self.adjoint {
            (output, input)
        } else {
            (input, output)
        }
    }
}

impl CustomOp1 for Resample {
    fn name(&self) -> &'static str {
        if self.adjoint {
            "ember.resample2d_backward"
        } else {
            "ember.resample2d"
        }
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (from, to) = self.shapes();
        let planes = l.shape().elem_count() / (from[0] * from[1]).max(1);
        let out = float_kernel!(self.name(), x = (s, l) => if self.adjoint {
            adjoint_planes(x, &self.rows, &self.cols, planes)
        } else {
            forward_planes(x, &self.rows, &self.cols, planes)
        })?;
        let mut dims = l.dims().to_vec();
        let n = dims.len();
        dims[n - 2..].copy_from_slice(&to);
        Ok((out, Shape::from(dims)))
    }

    fn bwd(&self, _x: &Tensor, _y: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let op = Resample {
            rows: self.rows.clone(),
            cols: self.cols.clone(),
            adjoint: !self.adjoint,
        };
        Ok(Some(grad.contiguous()?.apply_op1_no_bwd(&op)?))
    }
}

/// The maps' weights in the kernel's precision.
fn weights<T: Float>(map: &AxisMap) -> Vec<T> {
    map.weight.iter().map(|&w| T::from_f64(w)).collect()
}

/// Per plane: columns first (`t = x C^T`, `[in_h, out_w]`), then rows (`y = R t`, as row
/// multiply-adds).
fn forward_planes<T: Float>(x: &[T], rows: &AxisMap, cols: &AxisMap, planes: usize) -> Vec<T> {
    let (ih, iw, oh, ow) = (rows.input, cols.input, rows.output(), cols.output());
    let (rw, cw) = (weights::<T>(rows), weights::<T>(cols));
    let mut y = zeros::<T>(planes * oh * ow);
    if y.is_empty() {
        return y;
    }
    y.par_chunks_mut(oh * ow).enumerate().for_each_init(
        || zeros::<T>(ih * ow),
        |t, (p, y)| {
            let x = &x[p * ih * iw..][..ih * iw];
            for h in 0..ih {
                let (src, dst) = (&x[h * iw..][..iw], &mut t[h * ow..][..ow]);
                for (o, d) in dst.iter_mut().enumerate() {
                    *d = cols
                        .taps(o)
                        .fold(T::zero(), |s, k| s + cw[k] * src[cols.index[k]]);
                }
            }
            for o in 0..oh {
                let dst = &mut y[o * ow..][..ow];
                for k in rows.taps(o) {
                    simd::axpy(dst, rw[k], &t[rows.index[k] * ow..][..ow]);
                }
            }
        },
    );
    y
}

/// The adjoint of [`forward_planes`]: rows scattered back (`t = R^T dy`), then columns
/// (`dx = t C`).
fn adjoint_planes<T: Float>(dy: &[T], rows: &AxisMap, cols: &AxisMap, planes: usize) -> Vec<T> {
    let (ih, iw, oh, ow) = (rows.input, cols.input, rows.output(), cols.output());
    let (rw, cw) = (weights::<T>(rows), weights::<T>(cols));
    let mut dx = zeros::<T>(planes * ih * iw);
    if dx.is_empty() {
        return dx;
    }
    dx.par_chunks_mut(ih * iw).enumerate().for_each_init(
        || zeros::<T>(ih * ow),
        |t, (p, dx)| {
            let dy = &dy[p * oh * ow..][..oh * ow];
            t.fill(T::zero());
            for o in 0..oh {
                for k in rows.taps(o) {
                    simd::axpy(
                        &mut t[rows.index[k] * ow..][..ow],
                        rw[k],
                        &dy[o * ow..][..ow],
                    );
                }
            }
            for h in 0..ih {
                let (src, dst) = (&t[h * ow..][..ow], &mut dx[h * iw..][..iw]);
                for (o, &v) in src.iter().enumerate() {
                    for k in cols.taps(o) {
                        dst[cols.index[k]] += cw[k] * v;
                    }
                }
            }
        },
    );
    dx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dense_map_sums_repeated_taps() {
        let m = AxisMap::new(3, 2, |o| vec![(o, 0.5), (o, 0.25), (2, 1.0)]);
        let d = m
            .dense(DType::F64, &Device::Cpu)
            .unwrap()
            .to_vec2::<f64>()
            .unwrap();
        assert_eq!(d, [[0.75, 0.0, 1.0], [0.0, 0.75, 1.0]]);
    }
}
