//! Ember's own CUDA kernels (`kernels.cu`), for what no NVIDIA library provides: the fused
//! AdamW and SGD steps, the row softmax and the last-dim layer norm with their backwards.
//! The source is compiled once per process with NVRTC (which candle links already) and
//! loaded once per device; convolutions go to cuDNN instead (`conv/cudnn.rs`).

pub(crate) mod layer_norm;
pub mod optimizer;
pub(crate) mod softmax;

use std::sync::{Arc, OnceLock};

use candle_core::cuda::cudarc::driver::{
    CudaFunction, CudaStream, CudaView, LaunchArgs, LaunchConfig,
};
use candle_core::cuda::{CudaDType, CudaDevice, CudaStorage};
use candle_core::{Layout, Result};

const SOURCE: &str = include_str!("kernels.cu");

/// A kernel of `kernels.cu` loaded on a device, with the device's stream to launch it on.
pub(crate) struct Kernel {
    func: CudaFunction,
    stream: Arc<CudaStream>,
}

impl Kernel {
    pub fn builder(&self) -> LaunchArgs<'_> {
        self.stream.launch_builder(&self.func)
    }
}

/// The kernel `name` of `kernels.cu` on `dev`.
pub(crate) fn function(dev: &CudaDevice, name: &str) -> Result<Kernel> {
    static PTX: OnceLock<std::result::Result<String, String>> = OnceLock::new();
    let ptx = PTX
        .get_or_init(|| {
            candle_core::cuda::cudarc::nvrtc::compile_ptx(SOURCE)
                .map(|p| p.to_src())
                .map_err(|e| format!("{e:?}"))
        })
        .as_deref()
        .map_err(wrap("compiling Ember's kernels"))?;
    let func = dev.get_or_load_custom_func(name, "ember_kernels", ptx)?;
    Ok(Kernel {
        func: func.into_cuda_function(),
        stream: dev.cuda_stream(),
    })
}

/// A `map_err` for CUDA, cuDNN and NVRTC errors: `what` failed, with the library's words.
pub fn wrap<E: std::fmt::Debug>(what: &str) -> impl Fn(E) -> candle_core::Error + '_ {
    move |e| candle_core::Error::Cuda(format!("{what}: {e:?}").into())
}

/// A grid of 256-thread blocks covering `units` (elements, or warps' worth of rows) with
/// at most `max_blocks` blocks; the kernels stride over whatever is left.
pub(crate) fn grid(units: usize, per_block: usize, max_blocks: usize) -> LaunchConfig {
    let blocks = units.div_ceil(per_block).clamp(1, max_blocks) as u32;
    LaunchConfig {
        grid_dim: (blocks, 1, 1),
        block_dim: (256, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// The elements of contiguous `(s, l)` as a device view of `T`.
pub fn view<'a, T: CudaDType>(s: &'a CudaStorage, l: &Layout) -> Result<CudaView<'a, T>> {
    if !l.is_contiguous() {
        candle_core::bail!("CUDA kernel: operands must be contiguous")
    }
    let start = l.start_offset();
    Ok(s.as_cuda_slice::<T>()?
        .slice(start..start + l.shape().elem_count()))
}
