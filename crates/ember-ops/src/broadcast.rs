//! `a + b` and `a * b` where `b` broadcasts to `a`'s shape, with backwards whose reductions
//! are fast: bias adds, attention biases, channel and spatial gates.
//!
//! candle computes the gradient of a broadcast operand with `sum_keepdim` over the
//! broadcast dims, and its CPU reduction over any dim but the last walks memory with a
//! stride: summing a 8704x512 gradient over rows took 15 ms against 0.5 ms over columns, and
//! these reductions were the largest single cost of a LightViT training step. Here `a` is
//! viewed as `[outer, mid, inner]` and `b` as `[outer, 1, inner]` (one contiguous run of
//! broadcast dims, which covers every use above), so `b`'s gradient is a sum over `mid` of
//! contiguous rows. Other patterns, and other devices, take candle's ops.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use crate::cpu::{float_kernel, in_kernel_precision, par_fill, Float};
use crate::simd;

/// `a + b`, `b` broadcast to `a`'s shape.
pub fn broadcast_add(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    apply(a, b, Kind::Add)
}

/// `a * b`, `b` broadcast to `a`'s shape.
pub fn broadcast_mul(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    apply(a, b, Kind::Mul)
}

/// The sum over `dim`, kept as a size-1 dim: the reduction `broadcast_add` uses for its
/// gradient, one contiguous pass (candle's `sum_keepdim` strides over any dim but the last).
pub fn sum_keepdim(x: &Tensor, dim: usize) -> Result<Tensor> {
    let dims = x.dims();
    if dim >= dims.len() {
        candle_core::bail!("sum_keepdim: dim {dim} of a rank-{} tensor", dims.len())
    }
    if !x.device().is_cpu() || dims.contains(&0) {
        return x.sum_keepdim(dim);
    }
    let view = [
        dims[..dim].iter().product(),
        dims[dim],
        dims[dim + 1..].iter().product(),
    ];
    let mut shape = dims.to_vec();
    shape[dim] = 1;
    in_kernel_precision(&[x], |t| {
        t[0].contiguous()?
            .reshape((view[0], view[1], view[2]))?
            .apply_op1(SumMid { view })?
            .reshape(shape.clone())
    })
}

/// The forward op of [`sum_keepdim`]; its gradient is the incoming one broadcast back.
struct SumMid {
    view: [usize; 3],
}

impl CustomOp1 for SumMid {
    fn name(&self) -> &'static str {
        "ember.sum_keepdim"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        CustomOp1::cpu_fwd(&ReduceMid { view: self.view }, s, l)
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(grad.broadcast_as(x.shape())?.contiguous()?))
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Add,
    Mul,
}

/// `a`'s shape as `[outer, mid, inner]` such that `b` is `[outer, 1, inner]`, if it is.
fn view(a: &[usize], b: &[usize]) -> Option<[usize; 3]> {
    if b.len() > a.len() {
        return None;
    }
    // Left-pad b's dims with 1 to a's rank, then find the broadcast dims (b 1, a not).
    let pad = a.len() - b.len();
    let bd: Vec<usize> = std::iter::repeat_n(1, pad)
        .chain(b.iter().copied())
        .collect();
    let mut run: Option<(usize, usize)> = None;
    for (i, (&x, &y)) in a.iter().zip(&bd).enumerate() {
        if x == y {
            continue;
        }
        if y != 1 {
            return None;
        }
        match run {
            None => run = Some((i, i + 1)),
            Some((s, e)) if e == i => run = Some((s, i + 1)),
            // Dims of size 1 in both between two broadcast dims do not break the run.
            Some((s, e)) if a[e..i].iter().all(|&d| d == 1) => run = Some((s, i + 1)),
            Some(_) => return None,
        }
    }
    let prod = |r: &[usize]| r.iter().product::<usize>();
    match run {
        None => Some([1, 1, prod(a)]),
        Some((s, e)) => Some([prod(&a[..s]), prod(&a[s..e]), prod(&a[e..])]),
    }
}

fn apply(a: &Tensor, b: &Tensor, kind: Kind) -> Result<Tensor> {
    let shape = a.dims().to_vec();
    match view(a.dims(), b.dims()) {
        Some(v) if a.device().is_cpu() && a.dtype() == b.dtype() && !v.contains(&0) => {
            in_kernel_precision(&[a, b], |t| {
                let b3 = t[1].contiguous()?.reshape((v[0], 1, v[2]))?;
                t[0].contiguous()?
                    .reshape((v[0], v[1], v[2]))?
                    .apply_op2(&b3, Broadcast { kind, view: v })?
                    .reshape(shape.clone())
            })
        }
        _ => composed::apply(a, b, kind),
    }
}

struct Broadcast {
    kind: Kind,
    view: [usize; 3],
}

const GRAD_NAME: &str = "ember.broadcast_grad";

/// `b`'s gradient: the sum over `mid` of `g` (one input) or of `g * a` (two).
struct ReduceMid {
    view: [usize; 3],
}

impl CustomOp2 for Broadcast {
    fn name(&self) -> &'static str {
        match self.kind {
            Kind::Add => "ember.broadcast_add",
            Kind::Mul => "ember.broadcast_mul",
        }
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (view, kind) = (self.view, self.kind);
        let out =
            float_kernel!(self.name(), a = (s1, l1), b = (s2, l2) => forward(a, b, view, kind))?;
        Ok((out, l1.shape().clone()))
    }

    fn bwd(
        &self,
        a: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let g = grad.contiguous()?;
        let reduce = ReduceMid { view: self.view };
        Ok(match self.kind {
            Kind::Add => (Some(g.clone()), Some(g.apply_op1_no_bwd(&reduce)?)),
            Kind::Mul => {
                let ga = g.apply_op2_no_bwd(
                    b,
                    &Broadcast {
                        kind: Kind::Mul,
                        view: self.view,
                    },
                )?;
                (Some(ga), Some(g.apply_op2_no_bwd(a, &reduce)?))
            }
        })
    }
}

impl CustomOp1 for ReduceMid {
    fn name(&self) -> &'static str {
        GRAD_NAME
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let v = self.view;
        let out = float_kernel!(GRAD_NAME, g = (s, l) => reduce_mid(g, None, v))?;
        Ok((out, Shape::from((v[0], 1, v[2]))))
    }
}

impl CustomOp2 for ReduceMid {
    fn name(&self) -> &'static str {
        GRAD_NAME
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let v = self.view;
        let out =
            float_kernel!(GRAD_NAME, g = (s1, l1), a = (s2, l2) => reduce_mid(g, Some(a), v))?;
        Ok((out, Shape::from((v[0], 1, v[2]))))
    }
}

fn forward<T: Float>(a: &[T], b: &[T], [outer, mid, inner]: [usize; 3], kind: Kind) -> Vec<T> {
    debug_assert_eq!(a.len(), outer * mid * inner);
    let op = |x: T, b: T| match kind {
        Kind::Add => x + b,
        Kind::Mul => x * b,
    };
    // Whole rows of `inner` elements per task (at least 4096 elements), so that each row
    // finds its `b` row once.
    let rows = (4096 / inner).max(1);
    // SAFETY: every element of each chunk is written below.
    unsafe {
        par_fill(a.len(), rows * inner, |offset, out| {
            for (r, row) in out.chunks_mut(inner).enumerate() {
                let start = offset + r * inner;
                let o = start / (mid * inner);
                let brow = &b[o * inner..(o + 1) * inner];
                for ((y, &x), &bv) in row.iter_mut().zip(&a[start..start + inner]).zip(brow) {
                    y.write(op(x, bv));
                }
            }
        })
    }
}

/// `acc += g` or `acc += g * a`, element-wise.
fn accumulate<T: Float>(acc: &mut [T], g: &[T], a: Option<&[T]>) {
    match a {
        None => simd::add_assign(acc, g),
        Some(a) => acc
            .iter_mut()
            .zip(g.iter().zip(a))
            .for_each(|(s, (&g, &a))| *s += g * a),
    }
}

/// `out[o, i] = sum_m g[o, m, i] (* a[o, m, i])`.
fn reduce_mid<T: Float>(g: &[T], a: Option<&[T]>, [outer, mid, inner]: [usize; 3]) -> Vec<T> {
    // Rows `m` in `range` of block `o` into `acc`.
    let add_rows = |o: usize, range: std::ops::Range<usize>, acc: &mut [T]| {
        for m in range {
            let r = (o * mid + m) * inner..(o * mid + m + 1) * inner;
            accumulate(acc, &g[r.clone()], a.map(|a| &a[r]));
        }
    };
    let mut out = vec![T::zero(); outer * inner];
    if inner == 1 {
        // Row sums: contiguous runs of `mid`.
        out.par_iter_mut().enumerate().for_each(|(o, s)| {
            let r = o * mid..(o + 1) * mid;
            *s = match a {
                None => simd::sum(&g[r]),
                Some(a) => simd::dot(&g[r.clone()], &a[r]),
            };
        });
    } else if outer > 1 {
        out.par_chunks_mut(inner)
            .enumerate()
            .for_each(|(o, acc)| add_rows(o, 0..mid, acc));
    } else {
        // One output row: split `mid` between threads and add the partial sums.
        let per = mid.div_ceil(rayon::current_num_threads().max(1)).max(1);
        let partials: Vec<Vec<T>> = (0..mid.div_ceil(per))
            .into_par_iter()
            .map(|c| {
                let mut acc = vec![T::zero(); inner];
                add_rows(0, c * per..((c + 1) * per).min(mid), &mut acc);
                acc
            })
            .collect();
        for p in partials {
            simd::add_assign(&mut out, &p);
        }
    }
    out
}

/// The same with candle's broadcast ops (other devices, other broadcast patterns, and the
/// reference).
pub mod composed {
    use super::*;

    pub(super) fn apply(a: &Tensor, b: &Tensor, kind: Kind) -> Result<Tensor> {
        match kind {
            Kind::Add => a.broadcast_add(b),
            Kind::Mul => a.broadcast_mul(b),
        }
    }

    pub fn broadcast_add(a: &Tensor, b: &Tensor) -> Result<Tensor> {
        a.broadcast_add(b)
    }

    pub fn broadcast_mul(a: &Tensor, b: &Tensor) -> Result<Tensor> {
        a.broadcast_mul(b)
    }

    pub fn sum_keepdim(x: &Tensor, dim: usize) -> Result<Tensor> {
        x.sum_keepdim(dim)
    }
}
