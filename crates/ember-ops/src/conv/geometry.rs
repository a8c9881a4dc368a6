//! Convolution parameters as the user gives them, and the validated geometry the kernels
//! work from.

use candle_core::{bail, Result};

use crate::params::pair_setters;

/// Stride, zero padding, dilation (each per axis: height, width) and groups of a 2-d
/// convolution, as in `torch.nn.Conv2d`.
///
/// ```
/// use ember_ops::Conv2dParams;
/// let p = Conv2dParams::default().stride((1, 2)).padding(1).groups(4);
/// assert_eq!(p.stride, [1, 2]);
/// assert_eq!(p.padding, [1, 1]);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Conv2dParams {
    pub stride: [usize; 2],
    pub padding: [usize; 2],
    pub dilation: [usize; 2],
    pub groups: usize,
}

impl Default for Conv2dParams {
    fn default() -> Self {
        Self {
            stride: [1, 1],
            padding: [0, 0],
            dilation: [1, 1],
            groups: 1,
        }
    }
}

impl Conv2dParams {
    pair_setters!(stride, padding, dilation);

    pub fn groups(mut self, groups: usize) -> Self {
        self.groups = groups;
        self
    }
}

/// The shapes of one convolution seen from the forward direction: input `x` is
/// `[n, cin, h, w]`, weight `[cout, cin / groups, kh, kw]`, output `[n, cout, ho, wo]`.
/// A transposed convolution is described by the convolution whose input gradient it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct ConvGeometry {
    pub n: usize,
    pub cin: usize,
    pub h: usize,
    pub w: usize,
    pub cout: usize,
    pub kh: usize,
    pub kw: usize,
    pub ho: usize,
    pub wo: usize,
    pub params: Conv2dParams,
}

/// `floor((size + 2 pad - dil (k - 1) - 1) / stride) + 1`, or an error when the (padded)
/// input is smaller than the dilated kernel.
fn out_size(
    op: &str,
    axis: &str,
    size: usize,
    k: usize,
    stride: usize,
    pad: usize,
    dil: usize,
) -> Result<usize> {
    let span = dil * (k - 1) + 1;
    if size + 2 * pad < span {
        bail!("{op}: input {axis} {size} (+ 2x{pad} padding) is smaller than the kernel's reach {span}")
    }
    Ok((size + 2 * pad - span) / stride + 1)
}

fn dims4(op: &str, what: &str, dims: &[usize]) -> Result<[usize; 4]> {
    match dims {
        &[a, b, c, d] => Ok([a, b, c, d]),
        _ => bail!("{op}: {what} must be 4-d, got shape {dims:?}"),
    }
}

impl ConvGeometry {
    fn check_params(op: &str, p: &Conv2dParams) -> Result<()> {
        if p.stride.contains(&0) || p.dilation.contains(&0) || p.groups == 0 {
            bail!("{op}: stride, dilation and groups must be positive, got {p:?}")
        }
        Ok(())
    }

    /// The geometry of `conv2d(x, weight)`.
    pub fn for_conv(x: &[usize], weight: &[usize], params: Conv2dParams) -> Result<Self> {
        let op = "conv2d";
        Self::check_params(op, &params)?;
        let [n, cin, h, w] = dims4(op, "input", x)?;
        let [cout, cin_g, kh, kw] = dims4(op, "weight", weight)?;
        let g = params.groups;
        if cin_g * g != cin || cout % g != 0 || kh == 0 || kw == 0 {
            bail!(
                "{op}: input has {cin} channels, weight {weight:?} with groups {g} expects {} input channels and a multiple of {g} outputs",
                cin_g * g
            )
        }
        let [sh, sw] = params.stride;
        let [ph, pw] = params.padding;
        let [dh, dw] = params.dilation;
        let ho = out_size(op, "height", h, kh, sh, ph, dh)?;
        let wo = out_size(op, "width", w, kw, sw, pw, dw)?;
        Ok(Self {
            n,
            cin,
            h,
            w,
            cout,
            kh,
            kw,
            ho,
            wo,
            params,
        })
    }

    /// The geometry of `conv_transpose2d(x, weight)` with weight `[cin_t, cout_t / groups,
    /// kh, kw]`: the convolution from the `[n, cout_t, H, W]` output back to `x`.
    pub fn for_transpose(
        x: &[usize],
        weight: &[usize],
        params: Conv2dParams,
        output_padding: [usize; 2],
    ) -> Result<Self> {
        let op = "conv_transpose2d";
        Self::check_params(op, &params)?;
        let [n, cin_t, ho, wo] = dims4(op, "input", x)?;
        let [wc0, cout_tg, kh, kw] = dims4(op, "weight", weight)?;
        let g = params.groups;
        if wc0 != cin_t || cin_t % g != 0 || kh == 0 || kw == 0 {
            bail!("{op}: input has {cin_t} channels, weight {weight:?} with groups {g} does not match")
        }
        let mut out = [0; 2];
        for axis in 0..2 {
            let (s, p, d, op_) = (
                params.stride[axis],
                params.padding[axis],
                params.dilation[axis],
                output_padding[axis],
            );
            if op_ >= s.max(d) {
                bail!("{op}: output padding {op_} must be smaller than stride {s} or dilation {d}")
            }
            let k = [kh, kw][axis];
            let size_in = [ho, wo][axis];
            let full = (size_in - 1) * s + d * (k - 1) + op_ + 1;
            if size_in == 0 || full <= 2 * p {
                bail!("{op}: padding {p} leaves no output for input size {size_in}")
            }
            out[axis] = full - 2 * p;
        }
        Ok(Self {
            n,
            cin: cout_tg * g,
            h: out[0],
            w: out[1],
            cout: cin_t,
            kh,
            kw,
            ho,
            wo,
            params,
        })
    }

    pub fn groups(&self) -> usize {
        self.params.groups
    }

    pub fn cin_g(&self) -> usize {
        self.cin / self.params.groups
    }

    pub fn cout_g(&self) -> usize {
        self.cout / self.params.groups
    }

    /// Rows of the im2col matrix of one group: `cin_g * kh * kw`.
    pub fn k_rows(&self) -> usize {
        self.cin_g() * self.kh * self.kw
    }

    pub fn in_plane(&self) -> usize {
        self.h * self.w
    }

    pub fn out_plane(&self) -> usize {
        self.ho * self.wo
    }

    pub fn x_dims(&self) -> [usize; 4] {
        [self.n, self.cin, self.h, self.w]
    }

    pub fn y_dims(&self) -> [usize; 4] {
        [self.n, self.cout, self.ho, self.wo]
    }

    pub fn w_dims(&self) -> [usize; 4] {
        [self.cout, self.cin_g(), self.kh, self.kw]
    }

    /// A 1x1, stride-1, unpadded conv: the im2col matrix is the input itself.
    pub fn is_pointwise(&self) -> bool {
        self.kh == 1
            && self.kw == 1
            && self.params.stride == [1, 1]
            && self.params.padding == [0, 0]
            && (self.ho, self.wo) == (self.h, self.w)
    }

    /// One filter per channel (`groups == cin == cout`): run by the direct depthwise kernels.
    pub fn is_depthwise(&self) -> bool {
        self.params.groups > 1 && self.params.groups == self.cin && self.cin == self.cout
    }

    /// `2 * multiply-adds` of the forward pass.
    pub fn flops(&self) -> f64 {
        2.0 * (self.n * self.cout * self.out_plane() * self.k_rows()) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_sizes_follow_pytorch() {
        let p = Conv2dParams::default().stride(2).padding(1);
        let g = ConvGeometry::for_conv(&[2, 3, 8, 7], &[4, 3, 3, 3], p).unwrap();
        assert_eq!((g.ho, g.wo), (4, 4));
        let p = Conv2dParams::default().stride((1, 2)).dilation((2, 1));
        let g = ConvGeometry::for_conv(&[1, 2, 9, 10], &[2, 2, 2, 3], p).unwrap();
        assert_eq!((g.ho, g.wo), (7, 4));
    }

    #[test]
    fn transposed_geometry_inverts_the_forward_sizes() {
        // ConvTranspose2d(k=3, s=2, p=1, output_padding=1) doubles 4x5 to 8x10.
        let p = Conv2dParams::default().stride(2).padding(1);
        let g = ConvGeometry::for_transpose(&[1, 6, 4, 5], &[6, 2, 3, 3], p, [1, 1]).unwrap();
        assert_eq!((g.h, g.w, g.cin, g.cout), (8, 10, 2, 6));
        let f = ConvGeometry::for_conv(&[1, 2, 8, 10], &g.w_dims(), p).unwrap();
        assert_eq!((f.ho, f.wo), (4, 5));
    }

    #[test]
    fn bad_shapes_are_named() {
        let p = Conv2dParams::default();
        let e = ConvGeometry::for_conv(&[1, 3, 8, 8], &[4, 2, 3, 3], p).unwrap_err();
        assert!(e.to_string().contains("input has 3 channels"), "{e}");
        let e = ConvGeometry::for_conv(&[1, 3, 2, 8], &[4, 3, 3, 3], p).unwrap_err();
        assert!(e.to_string().contains("smaller than the kernel"), "{e}");
        let e = ConvGeometry::for_conv(&[1, 3, 8], &[4, 3, 3, 3], p).unwrap_err();
        assert!(e.to_string().contains("must be 4-d"), "{e}");
        let e = ConvGeometry::for_conv(&[1, 3, 8, 8], &[4, 3, 3, 3], p.stride(0)).unwrap_err();
        assert!(e.to_string().contains("must be positive"), "{e}");
        let e = ConvGeometry::for_transpose(&[1, 4, 3, 3], &[4, 1, 3, 3], p.stride(2), [2, 0])
            .unwrap_err();
        assert!(e.to_string().contains("output padding"), "{e}");
    }
}
