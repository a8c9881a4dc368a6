//! AdamW's and SGD's update of one parameter as a single CUDA kernel each: the state, the
//! decay and the step in one pass over memory, where the same update from candle ops takes
//! about fifteen kernels for AdamW and six for SGD with momentum (a 62-tensor ResNet-18
//! AdamW step was ~9 ms of launches on an H100). With mixed precision the kernel also writes
//! the bf16/f16 working copy of the f32 master weight. Hand-written (`kernels.cu`) because
//! no NVIDIA library has an optimizer step.
//!
//! The updates are torch's, in the same order as `ember_train::optim`'s composed path:
//! AdamW `w <- w (1 - lr wd) - lr (m / bc1) / (sqrt(v) / sqrt(bc2) + eps)`; SGD
//! `d = g + wd w`, `buf = momentum buf + d` (`d` on the first step), `w <- w - lr (d +
//! momentum buf)` with Nesterov, else `w - lr buf`.

use candle_core::cuda::cudarc::driver::{DevicePtr, PushKernelArg};
use candle_core::cuda::{CudaDType, CudaDevice};
use candle_core::{DType, Result, Storage, Tensor};

/// AdamW's settings for one step (`step` counts from 1, for the bias corrections).
#[derive(Debug, Clone, Copy)]
pub struct AdamWStep {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
    pub step: i32,
}

/// The device address of `t`'s first element; `t` must be a contiguous CUDA tensor of `T`.
/// The kernel writes through it: the tensors it updates are the optimizer's own (moments,
/// master weights) or a variable, which `Var::set` overwrites in place all the same.
fn address<T: CudaDType>(t: &Tensor) -> Result<(u64, CudaDevice)> {
    let (storage, layout) = t.storage_and_layout();
    let Storage::Cuda(cuda) = &*storage else {
        candle_core::bail!("fused optimizer step: operands must be on a CUDA device")
    };
    let stream = cuda.device.cuda_stream();
    let view = super::view::<T>(cuda, layout)?;
    let (address, _sync) = view.device_ptr(&stream);
    Ok((address, cuda.device.clone()))
}

/// One AdamW step in place: `w`, `m`, `v` (f32) from the gradient `g` (f32), and `work`
/// (the bf16/f16 parameter whose master `w` is) set to the new `w` when given. All must be
/// contiguous with the same number of elements, on one CUDA device.
pub fn adamw_cuda(
    w: &Tensor,
    g: &Tensor,
    m: &Tensor,
    v: &Tensor,
    work: Option<&Tensor>,
    s: &AdamWStep,
) -> Result<()> {
    let n = w.elem_count();
    same_sizes("AdamW", n, [g, m, v].into_iter().chain(work))?;
    let (pw, dev) = address::<f32>(w)?;
    let (pg, _) = address::<f32>(g)?;
    let (pm, _) = address::<f32>(m)?;
    let (pv, _) = address::<f32>(v)?;
    let (pwork, kind) = working_copy(work)?;
    let func = super::function(&dev, "ember_adamw")?;
    let (n64, lr, b1, b2, eps) = (
        n as i64,
        s.lr as f32,
        s.beta1 as f32,
        s.beta2 as f32,
        s.eps as f32,
    );
    let decay = (1.0 - s.lr * s.weight_decay) as f32;
    let bc1 = (1.0 - s.beta1.powi(s.step)) as f32;
    let bc2_sqrt = (1.0 - s.beta2.powi(s.step)).sqrt() as f32;
    let config = super::grid(n, 256, 4096);
    let mut launch = func.builder();
    launch
        .arg(&pw)
        .arg(&pg)
        .arg(&pm)
        .arg(&pv)
        .arg(&pwork)
        .arg(&kind)
        .arg(&n64)
        .arg(&lr)
        .arg(&b1)
        .arg(&b2)
        .arg(&eps)
        .arg(&decay)
        .arg(&bc1)
        .arg(&bc2_sqrt);
    // SAFETY: the arguments match the kernel's parameters one for one, and every address
    // points at `n` elements of the type the kernel reads or writes there.
    unsafe { launch.launch(config) }
        .map(drop)
        .map_err(super::wrap("AdamW kernel"))
}

/// SGD's settings for one step; `first` when the momentum buffer is new (it then takes the
/// step's direction as it is, as torch's does).
#[derive(Debug, Clone, Copy)]
pub struct SgdStep {
    pub lr: f64,
    pub momentum: f64,
    pub nesterov: bool,
    pub weight_decay: f64,
    pub first: bool,
}

/// One SGD step in place: `w` (f32) from the gradient `g` (f32), the momentum buffer `buf`
/// (f32; unused without momentum), and `work` as for [`adamw_cuda`].
pub fn sgd_cuda(
    w: &Tensor,
    g: &Tensor,
    buf: Option<&Tensor>,
    work: Option<&Tensor>,
    s: &SgdStep,
) -> Result<()> {
    let n = w.elem_count();
    same_sizes("SGD", n, [g].into_iter().chain(buf).chain(work))?;
    let (pw, dev) = address::<f32>(w)?;
    let (pg, _) = address::<f32>(g)?;
    let pbuf = match buf {
        Some(b) => address::<f32>(b)?.0,
        None if s.momentum != 0.0 => candle_core::bail!("fused SGD: momentum without a buffer"),
        None => 0,
    };
    let (pwork, kind) = working_copy(work)?;
    let func = super::function(&dev, "ember_sgd")?;
    let (n64, lr, momentum, wd) = (
        n as i64,
        s.lr as f32,
        s.momentum as f32,
        s.weight_decay as f32,
    );
    let (nesterov, first) = (s.nesterov as i32, s.first as i32);
    let mut launch = func.builder();
    launch
        .arg(&pw)
        .arg(&pg)
        .arg(&pbuf)
        .arg(&pwork)
        .arg(&kind)
        .arg(&n64)
        .arg(&lr)
        .arg(&momentum)
        .arg(&wd)
        .arg(&nesterov)
        .arg(&first);
    // SAFETY: as for AdamW; the buffer's address is only read or written with momentum.
    unsafe { launch.launch(super::grid(n, 256, 4096)) }
        .map(drop)
        .map_err(super::wrap("SGD kernel"))
}

fn same_sizes<'a>(what: &str, n: usize, tensors: impl Iterator<Item = &'a Tensor>) -> Result<()> {
    for t in tensors {
        if t.elem_count() != n {
            candle_core::bail!(
                "fused {what}: operands of {} and {n} elements",
                t.elem_count()
            )
        }
    }
    Ok(())
}

/// The address and kind (0 none, 1 bf16, 2 f16) of a master weight's working copy.
fn working_copy(work: Option<&Tensor>) -> Result<(u64, i32)> {
    Ok(match work {
        None => (0u64, 0i32),
        Some(t) => match t.dtype() {
            DType::BF16 => (address::<half::bf16>(t)?.0, 1),
            DType::F16 => (address::<half::f16>(t)?.0, 2),
            d => candle_core::bail!("fused optimizer step: a working copy in {d:?}"),
        },
    })
}
