//! The row softmax of `softmax.rs` on CUDA: one kernel forward and one backward
//! (`kernels.cu`), where candle's ops take five forward and several backward; f32 inside for
//! f32, bf16 and f16 rows.

use candle_core::backend::BackendStorage;
use candle_core::cuda::cudarc::driver::{DeviceRepr, PushKernelArg};
use candle_core::cuda::{CudaDType, CudaStorage};
use candle_core::{DType, Layout, Result};
use half::{bf16, f16};

fn launch<T: CudaDType + DeviceRepr>(
    kernel: &str,
    inputs: &[(&CudaStorage, &Layout)],
) -> Result<CudaStorage> {
    let (first, layout) = inputs[0];
    let dev = first.device();
    let n = *layout.dims().last().unwrap_or(&1);
    let len = layout.shape().elem_count();
    let row_count = len.checked_div(n).unwrap_or(0);
    // SAFETY: the kernel writes every element of every row.
    let mut out = unsafe { dev.alloc::<T>(len)? };
    if row_count > 0 {
        let views = inputs
            .iter()
            .map(|(s, l)| super::view::<T>(s, l))
            .collect::<Result<Vec<_>>>()?;
        let func = super::function(dev, kernel)?;
        let (rows64, n32) = (row_count as i64, n as i32);
        let mut b = func.builder();
        for v in &views {
            b.arg(v);
        }
        b.arg(&mut out).arg(&rows64).arg(&n32);
        // SAFETY: inputs, output, row count and row length as the kernel declares them.
        unsafe { b.launch(super::grid(row_count, 8, 65535)) }.map_err(super::wrap(kernel))?;
    }
    Ok(CudaStorage::wrap_cuda_slice(out, dev.clone()))
}

/// Dispatches on the dtype of the first input: `ember_softmax{_backward}_{f32,bf16,f16}`.
fn dispatch(kernel: &str, inputs: &[(&CudaStorage, &Layout)]) -> Result<CudaStorage> {
    match inputs[0].0.dtype() {
        DType::F32 => launch::<f32>(&format!("{kernel}_f32"), inputs),
        DType::BF16 => launch::<bf16>(&format!("{kernel}_bf16"), inputs),
        DType::F16 => launch::<f16>(&format!("{kernel}_f16"), inputs),
        d => candle_core::bail!("softmax on CUDA: unsupported dtype {d:?}"),
    }
}

/// `softmax(x)` over the last dim of contiguous `x`.
pub(crate) fn forward(x: &CudaStorage, l: &Layout) -> Result<CudaStorage> {
    dispatch("ember_softmax", &[(x, l)])
}

/// `y (dy - sum(y dy))` per row, from the softmax output `y` and its gradient `dy`.
pub(crate) fn backward(
    y: (&CudaStorage, &Layout),
    dy: (&CudaStorage, &Layout),
) -> Result<CudaStorage> {
    dispatch("ember_softmax_backward", &[y, dy])
}
