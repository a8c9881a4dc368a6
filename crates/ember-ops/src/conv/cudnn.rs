//! The three directions of [`ConvOp`] on CUDA through cuDNN (forward, backward data,
//! backward filter), the library PyTorch uses. Groups (depthwise included) go to cuDNN as a
//! group count rather than one conv per group. Algorithms come from cuDNN's heuristics, as
//! PyTorch picks them with `cudnn.benchmark` off, and are cached per shape; the workspace is
//! one grow-only buffer per device and thread. f32 convolutions use tensor cores (TF32)
//! only when the user allowed it for GEMMs too (`--tf32`), so f32 stays f32 by default;
//! bf16 and f16 accumulate in f32.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use candle_core::backend::BackendStorage;
use candle_core::cuda::cudarc::cudnn::safe::{
    ConvBackwardData, ConvBackwardFilter, ConvDescriptor, ConvForward, Cudnn, FilterDescriptor,
    TensorDescriptor,
};
use candle_core::cuda::cudarc::cudnn::sys::{
    cudnnConvolutionBwdDataAlgo_t, cudnnConvolutionBwdFilterAlgo_t, cudnnConvolutionFwdAlgo_t,
    cudnnConvolutionMode_t, cudnnMathType_t, cudnnTensorFormat_t,
};
use candle_core::cuda::cudarc::cudnn::CudnnDataType;
use candle_core::cuda::cudarc::driver::{CudaSlice, DeviceRepr};
use candle_core::cuda::{CudaDType, CudaDevice, CudaStorage, DeviceId};
use candle_core::{DType, Layout, Result};
use half::{bf16, f16};

use super::geometry::ConvGeometry;
use super::op::Direction;
use crate::cuda::wrap;

/// Which algorithm cuDNN's heuristics chose for one direction.
#[derive(Clone, Copy)]
enum Algo {
    Forward(cudnnConvolutionFwdAlgo_t),
    Data(cudnnConvolutionBwdDataAlgo_t),
    Filter(cudnnConvolutionBwdFilterAlgo_t),
}

/// Per device, on this thread (cuDNN handles are neither Send nor Sync): the handle, the
/// algorithms chosen per shape, and the workspace.
struct PerDevice {
    handle: Arc<Cudnn>,
    algos: HashMap<(ConvGeometry, Direction, DType, bool), Algo>,
    workspace: Option<CudaSlice<u8>>,
}

thread_local! {
    static DEVICES: RefCell<HashMap<DeviceId, PerDevice>> = RefCell::new(HashMap::new());
}

/// Runs `direction` of the convolution `g` on `(a, b)`, the operands [`ConvOp`] documents
/// for it: `(x, w) -> y`, `(dy, w) -> dx`, `(dy, x) -> dw`.
pub(crate) fn run(
    g: &ConvGeometry,
    direction: Direction,
    (a, la): (&CudaStorage, &Layout),
    (b, lb): (&CudaStorage, &Layout),
) -> Result<CudaStorage> {
    match a.dtype() {
        DType::F32 => typed::<f32>(g, direction, (a, la), (b, lb)),
        DType::F64 => typed::<f64>(g, direction, (a, la), (b, lb)),
        DType::F16 => typed::<f16>(g, direction, (a, la), (b, lb)),
        DType::BF16 => typed::<bf16>(g, direction, (a, la), (b, lb)),
        d => candle_core::bail!("conv2d on CUDA: unsupported dtype {d:?}"),
    }
}

fn dims(d: [usize; 4]) -> [i32; 4] {
    d.map(|v| v as i32)
}

/// The descriptors of one convolution, element type `T`, accumulating in `C`.
struct Descriptors<T: CudnnDataType, C: CudnnDataType> {
    conv: ConvDescriptor<C>,
    x: TensorDescriptor<T>,
    w: FilterDescriptor<T>,
    y: TensorDescriptor<T>,
}

fn descriptors<T: CudnnDataType, C: CudnnDataType>(
    handle: &Arc<Cudnn>,
    g: &ConvGeometry,
    tensor_cores: bool,
) -> Result<Descriptors<T, C>> {
    let p = &g.params;
    let mut conv = handle
        .create_conv2d::<C>(
            [p.padding[0] as i32, p.padding[1] as i32],
            [p.stride[0] as i32, p.stride[1] as i32],
            [p.dilation[0] as i32, p.dilation[1] as i32],
            cudnnConvolutionMode_t::CUDNN_CROSS_CORRELATION,
        )
        .map_err(wrap("convolution descriptor"))?;
    conv.set_group_count(p.groups as i32)
        .map_err(wrap("group count"))?;
    let math = if tensor_cores {
        cudnnMathType_t::CUDNN_TENSOR_OP_MATH
    } else {
        // No tensor cores for f32 (and f64): FMA only, which rules out TF32.
        cudnnMathType_t::CUDNN_FMA_MATH
    };
    conv.set_math_type(math).map_err(wrap("math type"))?;
    let nchw = cudnnTensorFormat_t::CUDNN_TENSOR_NCHW;
    Ok(Descriptors {
        conv,
        x: handle
            .create_4d_tensor::<T>(nchw, dims(g.x_dims()))
            .map_err(wrap("input descriptor"))?,
        w: handle
            .create_4d_filter::<T>(nchw, dims(g.w_dims()))
            .map_err(wrap("filter descriptor"))?,
        y: handle
            .create_4d_tensor::<T>(nchw, dims(g.y_dims()))
            .map_err(wrap("output descriptor"))?,
    })
}

/// The element types cuDNN runs: the scaling factors are `f32` for the half types and the
/// type itself otherwise, and the accumulation type `Acc` is f32 for the half types.
trait ConvElement: CudaDType + DeviceRepr + CudnnDataType + Copy {
    type Acc: CudnnDataType;
    const ONE: Self;
    const ZERO: Self;
    /// Whether tensor cores may run it (always for half types; for f32 only with TF32 on).
    fn tensor_cores() -> bool;
}

impl ConvElement for f32 {
    type Acc = f32;
    const ONE: Self = 1.0;
    const ZERO: Self = 0.0;
    fn tensor_cores() -> bool {
        candle_core::cuda::gemm_reduced_precision_f32()
    }
}

impl ConvElement for f64 {
    type Acc = f64;
    const ONE: Self = 1.0;
    const ZERO: Self = 0.0;
    fn tensor_cores() -> bool {
        false
    }
}

impl ConvElement for f16 {
    type Acc = f32;
    const ONE: Self = f16::ONE;
    const ZERO: Self = f16::ZERO;
    fn tensor_cores() -> bool {
        true
    }
}

impl ConvElement for bf16 {
    type Acc = f32;
    const ONE: Self = bf16::ONE;
    const ZERO: Self = bf16::ZERO;
    fn tensor_cores() -> bool {
        true
    }
}

fn typed<T: ConvElement>(
    g: &ConvGeometry,
    direction: Direction,
    (a, la): (&CudaStorage, &Layout),
    (b, lb): (&CudaStorage, &Layout),
) -> Result<CudaStorage> {
    let dev: &CudaDevice = a.device();
    let out_len: usize = match direction {
        Direction::Forward => g.y_dims(),
        Direction::InputGrad => g.x_dims(),
        Direction::WeightGrad => g.w_dims(),
    }
    .iter()
    .product();
    let (va, vb) = (
        crate::cuda::view::<T>(a, la)?,
        crate::cuda::view::<T>(b, lb)?,
    );
    // SAFETY: cuDNN writes every element (beta = 0).
    let mut out = unsafe { dev.alloc::<T>(out_len)? };
    let tensor_cores = T::tensor_cores();
    DEVICES.with(|devices| -> Result<()> {
        let mut devices = devices.borrow_mut();
        let state = match devices.entry(dev.id()) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => e.insert(PerDevice {
                handle: Cudnn::new(dev.cuda_stream()).map_err(wrap("handle"))?,
                algos: HashMap::new(),
                workspace: None,
            }),
        };
        let d = descriptors::<T, T::Acc>(&state.handle, g, tensor_cores)?;
        let key = (*g, direction, a.dtype(), tensor_cores);
        let scale = (T::ONE, T::ZERO);
        match direction {
            Direction::Forward => {
                let op = ConvForward {
                    conv: &d.conv,
                    x: &d.x,
                    w: &d.w,
                    y: &d.y,
                };
                // Heuristics once per shape; later calls take the cached choice.
                let algo = match state.algos.get(&key) {
                    Some(Algo::Forward(algo)) => *algo,
                    _ => {
                        let algo = op.pick_algorithm().map_err(wrap("forward algorithm"))?;
                        state.algos.insert(key, Algo::Forward(algo));
                        algo
                    }
                };
                let size = op.get_workspace_size(algo).map_err(wrap("workspace"))?;
                let ws = workspace(&mut state.workspace, dev, size)?;
                // SAFETY: the views and `out` match the descriptors' types and shapes.
                unsafe { op.launch(algo, ws, scale, &va, &vb, &mut out) }
                    .map_err(wrap("forward"))?;
            }
            Direction::InputGrad => {
                let op = ConvBackwardData {
                    conv: &d.conv,
                    dx: &d.x,
                    w: &d.w,
                    dy: &d.y,
                };
                let algo = match state.algos.get(&key) {
                    Some(Algo::Data(algo)) => *algo,
                    _ => {
                        let algo = op
                            .pick_algorithm()
                            .map_err(wrap("backward-data algorithm"))?;
                        state.algos.insert(key, Algo::Data(algo));
                        algo
                    }
                };
                let size = op.get_workspace_size(algo).map_err(wrap("workspace"))?;
                let ws = workspace(&mut state.workspace, dev, size)?;
                // SAFETY: as above; a = dy, b = w.
                unsafe { op.launch(algo, ws, scale, &mut out, &vb, &va) }
                    .map_err(wrap("backward data"))?;
            }
            Direction::WeightGrad => {
                let op = ConvBackwardFilter {
                    conv: &d.conv,
                    x: &d.x,
                    dw: &d.w,
                    dy: &d.y,
                };
                let algo = match state.algos.get(&key) {
                    Some(Algo::Filter(algo)) => *algo,
                    _ => {
                        let algo = op
                            .pick_algorithm()
                            .map_err(wrap("backward-filter algorithm"))?;
                        state.algos.insert(key, Algo::Filter(algo));
                        algo
                    }
                };
                let size = op.get_workspace_size(algo).map_err(wrap("workspace"))?;
                let ws = workspace(&mut state.workspace, dev, size)?;
                // SAFETY: as above; a = dy, b = x.
                unsafe { op.launch(algo, ws, scale, &vb, &mut out, &va) }
                    .map_err(wrap("backward filter"))?;
            }
        }
        Ok(())
    })?;
    Ok(CudaStorage::wrap_cuda_slice(out, dev.clone()))
}

/// The cached workspace, grown to at least `size` bytes; `None` when none is needed.
fn workspace<'a>(
    cached: &'a mut Option<CudaSlice<u8>>,
    dev: &CudaDevice,
    size: usize,
) -> Result<Option<&'a mut CudaSlice<u8>>> {
    if size == 0 {
        return Ok(None);
    }
    if cached.as_ref().is_none_or(|w| w.len() < size) {
        // SAFETY: a workspace is scratch memory; cuDNN initialises what it reads.
        *cached = Some(unsafe { dev.alloc::<u8>(size)? });
    }
    Ok(cached.as_mut())
}
