//! Synchronised batch norm (`torch.nn.SyncBatchNorm`): in a data-parallel run every rank
//! normalises its shard with the statistics of the whole global batch, so batch norm sees
//! what it sees in one process with the same batch. Without it each rank normalises its own
//! shard (DDP's default), which changes the model when shards are small.
//!
//! The statistics are two sums over the ranks, in two passes for precision: `mean = sum(x) /
//! N`, then `var = sum((x - mean)^2) / N`, each a local sum followed by [`RankSum`]. A sum
//! over ranks is differentiable: every rank's loss depends on it, so the gradient of a
//! rank's local sum is the sum of every rank's gradient of the total (PyTorch's SyncBN
//! backward all-reduces `sum_dy` and `sum_dy_xmu` for the same reason). The normalisation
//! itself is the composed (autograd) batch norm's (`composed::scale_shift`), so the gradient
//! through the global statistics is exact; it costs a few element-wise passes more than the
//! fused kernel, paid only when synchronised.
//!
//! The process-wide switch ([`synchronise`]) mirrors `convert_sync_batchnorm`: the training
//! tools install the launch's communicator once, and every training-mode batch norm in the
//! process then goes through [`batch_norm_train_synced`]. Every rank must run the same batch
//! norms in the same order (they do: data parallelism runs one program).

use std::sync::{Arc, OnceLock};

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, DType, Layout, Result, Shape, Tensor};

use crate::batch_norm::{composed, BatchStats};
use crate::cpu::kernel_dtype;

/// Sums a tensor element-wise over the ranks; the same result on every rank.
pub type RankSum = Arc<dyn Fn(&Tensor) -> Result<Tensor> + Send + Sync>;

static SYNC: OnceLock<RankSum> = OnceLock::new();

/// From now on every training-mode batch norm of this process normalises with the
/// statistics of all ranks, summed by `sum`. Once per process; later calls are ignored.
pub fn synchronise(sum: RankSum) {
    let _ = SYNC.set(sum);
}

/// The installed sum over ranks, if [`synchronise`] was called.
pub(crate) fn installed() -> Option<&'static RankSum> {
    SYNC.get()
}

/// Training-mode batch norm with the statistics of every rank's `x` (summed by `sum`): `y`
/// and the global batch's statistics.
pub fn batch_norm_train_synced(
    x: &Tensor,
    weight: Option<&Tensor>,
    bias: Option<&Tensor>,
    eps: f64,
    sum: &RankSum,
) -> Result<(Tensor, BatchStats)> {
    if x.rank() < 2 {
        candle_core::bail!("batch norm: needs a [n, c, ...] tensor, got {:?}", x.dims())
    }
    let dtype = x.dtype();
    let xw = x.to_dtype(kernel_dtype(dtype))?;
    let dims: Vec<usize> = (0..x.rank()).filter(|&d| d != 1).collect();
    let local = (x.elem_count() / x.dim(1)?) as f64;
    // The count travels with the first sum: shards of a last batch may differ in size.
    let count = Tensor::full(local, 1, xw.device())?.to_dtype(xw.dtype())?;
    let first = across_ranks(
        &Tensor::cat(
            &[&xw.sum_keepdim(dims.as_slice())?.flatten_all()?, &count],
            0,
        )?,
        sum,
    )?;
    let c = x.dim(1)?;
    let total = first.get(c)?.to_dtype(DType::F64)?.to_scalar::<f64>()?;
    let mut shape = vec![1; x.rank()];
    shape[1] = c;
    let mean = (first.narrow(0, 0, c)? / total)?.reshape(shape.as_slice())?;
    let centred = xw.broadcast_sub(&mean)?;
    let squares = centred.sqr()?.sum_keepdim(dims.as_slice())?.flatten_all()?;
    let var = (across_ranks(&squares, sum)? / total)?.reshape(shape.as_slice())?;
    let y = composed::scale_shift(&centred, &var, weight, bias, eps)?;
    let stats = BatchStats {
        mean: mean.flatten_all()?.detach(),
        var: var.flatten_all()?.detach(),
        count: total.round() as usize,
    };
    Ok((y.to_dtype(dtype)?, stats))
}

/// `sum(t)` over the ranks, with the gradient of a sum over ranks: the sum over ranks of
/// the incoming gradient.
fn across_ranks(t: &Tensor, sum: &RankSum) -> Result<Tensor> {
    let total = sum(&t.detach())?;
    // The op's value is `total`; its gradient flows into `t`.
    let carrier = t.copy()?.apply_op1(SummedGradient { sum: sum.clone() })?;
    carrier.sub(&carrier.detach())?.add(&total)
}

/// The identity, whose backward sums the gradient over the ranks (CPU and CUDA; a launch
/// runs on those).
struct SummedGradient {
    sum: RankSum,
}

impl SummedGradient {
    fn check(l: &Layout) -> Result<()> {
        if l.start_offset() != 0 || !l.is_contiguous() {
            candle_core::bail!("summed gradient: needs a fresh contiguous tensor")
        }
        Ok(())
    }
}

impl CustomOp1 for SummedGradient {
    fn name(&self) -> &'static str {
        "ember.summed_gradient"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        Self::check(l)?;
        Ok((s.try_clone(l)?, l.shape().clone()))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s: &candle_core::CudaStorage,
        l: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        Self::check(l)?;
        Ok((s.try_clone(l)?, l.shape().clone()))
    }

    fn bwd(&self, _x: &Tensor, _y: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some((self.sum)(&grad.contiguous()?)?))
    }
}
