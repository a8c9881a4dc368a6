//! Strided slicing from candle ops, which candle lacks (`narrow` has no step). Used by the
//! composed (device-generic) convolution and pooling.

use candle_core::{Result, Tensor};

/// Elements `offset, offset + stride, ...` (`n` of them) along `dim`: a narrow to
/// `n * stride` elements (zero-padded at the end if the tensor is shorter), a reshape that
/// splits `dim` into `(n, stride)`, and the first of each `stride`. All three have gradients.
pub(crate) fn take_strided(
    x: &Tensor,
    dim: usize,
    offset: usize,
    n: usize,
    stride: usize,
) -> Result<Tensor> {
    if stride == 1 {
        return x.narrow(dim, offset, n);
    }
    let available = x.dim(dim)? - offset;
    let wanted = n * stride;
    let run = if available >= wanted {
        x.narrow(dim, offset, wanted)?
    } else {
        x.narrow(dim, offset, available)?
            .pad_with_zeros(dim, 0, wanted - available)?
    };
    let mut dims = run.dims().to_vec();
    dims[dim] = n;
    dims.insert(dim + 1, stride);
    run.reshape(dims)?.narrow(dim + 1, 0, 1)?.squeeze(dim + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn takes_every_stride_th_element() {
        let x = Tensor::arange(0f32, 10., &Device::Cpu)
            .unwrap()
            .reshape((1, 10))
            .unwrap();
        let t = take_strided(&x, 1, 1, 4, 3).unwrap();
        assert_eq!(t.to_vec2::<f32>().unwrap(), [[1., 4., 7., 0.]]);
        let t = take_strided(&x, 1, 2, 3, 2).unwrap();
        assert_eq!(t.to_vec2::<f32>().unwrap(), [[2., 4., 6.]]);
    }
}
