//! Many tensors through one collective call: the tensors of each dtype are flattened into
//! one buffer (NCCL and the TCP path both pay per call, not per byte, for small tensors),
//! the operation runs once per dtype, and the result is cut back into the original shapes.

use candle_core::{DType, Result, Tensor};

pub(crate) fn per_dtype(
    tensors: &[Tensor],
    op: impl Fn(&Tensor) -> Result<Tensor>,
) -> Result<Vec<Tensor>> {
    let mut out: Vec<Option<Tensor>> = vec![None; tensors.len()];
    let mut dtypes: Vec<DType> = tensors.iter().map(Tensor::dtype).collect();
    dtypes.sort_by_key(|d| d.as_str());
    dtypes.dedup();
    for dtype in dtypes {
        let members: Vec<usize> = (0..tensors.len())
            .filter(|&i| tensors[i].dtype() == dtype)
            .collect();
        let flat: Vec<Tensor> = members
            .iter()
            .map(|&i| tensors[i].flatten_all())
            .collect::<Result<_>>()?;
        let done = op(&Tensor::cat(&flat, 0)?)?;
        let mut offset = 0;
        for &i in &members {
            let n = tensors[i].elem_count();
            out[i] = Some(done.narrow(0, offset, n)?.reshape(tensors[i].shape())?);
            offset += n;
        }
    }
    Ok(out
        .into_iter()
        .map(|t| t.expect("every tensor has a dtype group"))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn shapes_and_types_come_back_as_they_went() {
        let dev = Device::Cpu;
        let a = Tensor::arange(0f32, 6.0, &dev)
            .unwrap()
            .reshape((2, 3))
            .unwrap();
        let b = Tensor::new(&[7f64, 8.0], &dev).unwrap();
        let c = Tensor::new(9f32, &dev).unwrap();
        let calls = std::cell::Cell::new(0);
        let out = per_dtype(&[a.clone(), b.clone(), c.clone()], |t| {
            calls.set(calls.get() + 1);
            t * 2.0
        })
        .unwrap();
        assert_eq!(calls.get(), 2, "one call per dtype");
        assert_eq!(
            out[0].to_vec2::<f32>().unwrap(),
            [[0., 2., 4.], [6., 8., 10.]]
        );
        assert_eq!(out[1].to_vec1::<f64>().unwrap(), [14., 16.]);
        assert_eq!(out[2].to_scalar::<f32>().unwrap(), 18.);
    }
}
