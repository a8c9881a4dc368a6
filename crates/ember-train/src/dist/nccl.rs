//! The collective for CUDA tensors: NCCL (through cudarc, which candle's `nccl` feature
//! enables), one communicator per process on its GPU's stream, created from a unique id
//! that rank 0 makes and sends to the others over the TCP rendezvous. The operations run
//! as candle custom ops so that their result is an ordinary tensor on the device.

use std::sync::Mutex;

use candle_core::backend::BackendStorage;
use candle_core::cuda::cudarc::nccl::safe::{Comm, Id, ReduceOp};
use candle_core::cuda::{CudaDevice, CudaStorage};
use candle_core::{CpuStorage, CustomOp1, DType, Layout, Result, Shape, Tensor};
use ember_core::dist::World;
use ember_ops::cuda::{view, wrap};

use super::tcp::TcpGroup;
use super::Collective;

pub(crate) struct NcclGroup {
    comm: Mutex<SendComm>,
    ranks: usize,
}

/// cudarc's `Comm` holds a raw NCCL handle and so is neither `Send` nor `Sync`. This process
/// creates one and uses it only through the mutex, one collective at a time, on the stream
/// of the device it was made for; NCCL allows a communicator to be used from any thread
/// when calls do not overlap.
struct SendComm(Comm);
unsafe impl Send for SendComm {}

impl NcclGroup {
    pub(crate) fn join(tcp: &TcpGroup, world: &World, dev: &CudaDevice) -> Result<Self> {
        let id = if world.is_primary() {
            Some(Id::new().map_err(wrap("creating the NCCL id"))?)
        } else {
            None
        };
        let bytes: Vec<u8> = id
            .map(|id| id.internal().iter().map(|&c| c as u8).collect())
            .unwrap_or_else(|| vec![0; 128]);
        let bytes = tcp.broadcast_bytes(&bytes)?;
        let mut internal = [0 as std::ffi::c_char; 128];
        for (slot, b) in internal.iter_mut().zip(bytes) {
            *slot = b as std::ffi::c_char;
        }
        let comm = Comm::from_rank(
            dev.cuda_stream(),
            world.rank,
            world.size,
            Id::uninit(internal),
        )
        .map_err(wrap("joining the NCCL communicator"))?;
        Ok(Self {
            comm: Mutex::new(SendComm(comm)),
            ranks: world.size,
        })
    }
}

enum Operation {
    Mean,
    Broadcast,
    /// Every rank's tensor in rank order: the output is `ranks` times the input.
    Gather {
        ranks: usize,
    },
}

impl Operation {
    fn output_len(&self, input_len: usize) -> usize {
        match self {
            Operation::Gather { ranks } => input_len * ranks,
            Operation::Mean | Operation::Broadcast => input_len,
        }
    }
}

struct Exchange<'a> {
    group: &'a NcclGroup,
    op: Operation,
}

impl Exchange<'_> {
    fn run<T>(&self, s: &CudaStorage, l: &Layout) -> Result<CudaStorage>
    where
        T: candle_core::cuda::CudaDType
            + candle_core::cuda::cudarc::nccl::safe::NcclType
            + candle_core::cuda::cudarc::driver::DeviceRepr
            + candle_core::cuda::cudarc::driver::ValidAsZeroBits,
    {
        let dev = s.device.clone();
        let input = view::<T>(s, l)?;
        let mut out = dev.alloc_zeros::<T>(self.op.output_len(l.shape().elem_count()))?;
        let comm = self.group.comm.lock().expect("no collective panicked");
        match self.op {
            Operation::Mean => comm.0.all_reduce(&input, &mut out, &ReduceOp::Avg),
            Operation::Broadcast => comm.0.broadcast(Some(&input), &mut out, 0),
            Operation::Gather { .. } => comm.0.all_gather(&input, &mut out),
        }
        .map_err(wrap("an NCCL collective"))?;
        Ok(CudaStorage::wrap_cuda_slice(out, dev))
    }
}

impl CustomOp1 for Exchange<'_> {
    fn name(&self) -> &'static str {
        "nccl-exchange"
    }

    fn cpu_fwd(&self, _: &CpuStorage, _: &Layout) -> Result<(CpuStorage, Shape)> {
        candle_core::bail!("NCCL exchanges CUDA tensors only")
    }

    fn cuda_fwd(&self, s: &CudaStorage, l: &Layout) -> Result<(CudaStorage, Shape)> {
        let out = match s.dtype() {
            DType::F32 => self.run::<f32>(s, l)?,
            DType::F64 => self.run::<f64>(s, l)?,
            DType::BF16 => self.run::<half::bf16>(s, l)?,
            DType::F16 => self.run::<half::f16>(s, l)?,
            other => candle_core::bail!("NCCL exchange of {other:?}"),
        };
        let len = self.op.output_len(l.shape().elem_count());
        Ok((out, Shape::from(len)))
    }
}

impl NcclGroup {
    fn exchange(&self, t: &Tensor, op: Operation) -> Result<Tensor> {
        t.contiguous()?
            .apply_op1_no_bwd(&Exchange { group: self, op })
    }
}

impl Collective for NcclGroup {
    fn all_reduce_mean(&self, t: &Tensor) -> Result<Tensor> {
        self.exchange(t, Operation::Mean)
    }

    fn broadcast(&self, t: &Tensor) -> Result<Tensor> {
        self.exchange(t, Operation::Broadcast)
    }

    fn all_gather(&self, t: &Tensor) -> Result<Tensor> {
        self.exchange(t, Operation::Gather { ranks: self.ranks })
    }
}
