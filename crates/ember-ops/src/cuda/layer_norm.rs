//! Layer norm over the last dim on CUDA (`kernels.cu`): one kernel forward; backward one
//! kernel for the input gradient with the weight and bias gradients summed per block in
//! shared memory, and one that stores those. Channels-first layer norm (and f64) keep the
//! composed path.

use candle_core::backend::BackendStorage;
use candle_core::cuda::cudarc::driver::{DeviceRepr, PushKernelArg};
use candle_core::cuda::{CudaDType, CudaStorage};
use candle_core::{DType, Layout, Result};
use half::{bf16, f16};

/// The widest row the backward's shared memory (2 f32 sums per channel, 48 KB) holds.
pub(crate) const MAX_CHANNELS: usize = 6144;

type Operand<'a> = (&'a CudaStorage, &'a Layout);

fn rows(x: Operand, c: usize) -> usize {
    x.1.shape().elem_count() / c.max(1)
}

fn forward_typed<T: CudaDType + DeviceRepr>(
    suffix: &str,
    [x, g, b]: [Operand; 3],
    c: usize,
    eps: f64,
) -> Result<CudaStorage> {
    let dev = x.0.device();
    let n = x.1.shape().elem_count();
    // SAFETY: the kernel writes every element.
    let mut y = unsafe { dev.alloc::<T>(n)? };
    let row_count = rows(x, c);
    if row_count > 0 {
        let (vx, vg, vb) = (
            super::view::<T>(x.0, x.1)?,
            super::view::<T>(g.0, g.1)?,
            super::view::<T>(b.0, b.1)?,
        );
        let func = super::function(dev, &format!("ember_layer_norm_{suffix}"))?;
        let (rows64, c32, eps32) = (row_count as i64, c as i32, eps as f32);
        let mut launch = func.builder();
        launch
            .arg(&vx)
            .arg(&vg)
            .arg(&vb)
            .arg(&mut y)
            .arg(&rows64)
            .arg(&c32)
            .arg(&eps32);
        // SAFETY: operands as the kernel declares them.
        unsafe { launch.launch(super::grid(row_count, 8, 65535)) }
            .map_err(super::wrap("layer norm kernel"))?;
    }
    Ok(CudaStorage::wrap_cuda_slice(y, dev.clone()))
}

fn backward_typed<T: CudaDType + DeviceRepr>(
    suffix: &str,
    [x, g, dy]: [Operand; 3],
    c: usize,
    eps: f64,
) -> Result<CudaStorage> {
    if c > MAX_CHANNELS {
        candle_core::bail!("layer norm backward on CUDA: {c} channels (at most {MAX_CHANNELS})")
    }
    let dev = x.0.device();
    let n = x.1.shape().elem_count();
    // SAFETY: the kernels write every element: dx, then the 2c weight and bias gradients.
    let mut out = unsafe { dev.alloc::<T>(n + 2 * c)? };
    let mut sums = dev.alloc_zeros::<f32>(2 * c)?;
    let row_count = rows(x, c);
    if row_count > 0 {
        let (vx, vg, vdy) = (
            super::view::<T>(x.0, x.1)?,
            super::view::<T>(g.0, g.1)?,
            super::view::<T>(dy.0, dy.1)?,
        );
        let func = super::function(dev, &format!("ember_layer_norm_backward_{suffix}"))?;
        let (rows64, c32, eps32) = (row_count as i64, c as i32, eps as f32);
        let mut config = super::grid(row_count, 8, 1024);
        config.shared_mem_bytes = (2 * c * std::mem::size_of::<f32>()) as u32;
        let mut launch = func.builder();
        launch
            .arg(&vx)
            .arg(&vg)
            .arg(&vdy)
            .arg(&mut out)
            .arg(&mut sums)
            .arg(&rows64)
            .arg(&c32)
            .arg(&eps32);
        // SAFETY: operands as the kernel declares them; shared memory for 2c floats.
        unsafe { launch.launch(config) }.map_err(super::wrap("layer norm backward kernel"))?;
    }
    {
        let func = super::function(dev, &format!("ember_store_tail_{suffix}"))?;
        let mut tail = out.slice_mut(n..);
        let two_c = (2 * c) as i32;
        let mut launch = func.builder();
        launch.arg(&sums).arg(&mut tail).arg(&two_c);
        // SAFETY: 2c f32 sums into the 2c elements after dx.
        unsafe { launch.launch(super::grid(2 * c, 256, 64)) }
            .map_err(super::wrap("layer norm backward kernel"))?;
    }
    Ok(CudaStorage::wrap_cuda_slice(out, dev.clone()))
}

/// `(x - mean) / sqrt(var + eps) * g + b` over the last dim (`c` wide) of contiguous `x`.
pub(crate) fn forward(operands: [Operand; 3], c: usize, eps: f64) -> Result<CudaStorage> {
    match operands[0].0.dtype() {
        DType::F32 => forward_typed::<f32>("f32", operands, c, eps),
        DType::BF16 => forward_typed::<bf16>("bf16", operands, c, eps),
        DType::F16 => forward_typed::<f16>("f16", operands, c, eps),
        d => candle_core::bail!("layer norm on CUDA: unsupported dtype {d:?}"),
    }
}

/// `[dx, dgamma, dbeta]` flat, from `x`, `gamma` and the output gradient `dy`.
pub(crate) fn backward(operands: [Operand; 3], c: usize, eps: f64) -> Result<CudaStorage> {
    match operands[0].0.dtype() {
        DType::F32 => backward_typed::<f32>("f32", operands, c, eps),
        DType::BF16 => backward_typed::<bf16>("bf16", operands, c, eps),
        DType::F16 => backward_typed::<f16>("f16", operands, c, eps),
        d => candle_core::bail!("layer norm backward on CUDA: unsupported dtype {d:?}"),
    }
}
