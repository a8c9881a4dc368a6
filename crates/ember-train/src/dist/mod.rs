//! Data-parallel training: one process per GPU (or CPU process), each on its shard of
//! every batch (`ember_data::Shard`), gradients averaged across the processes after every
//! backward pass so that all of them take the same step and keep the same weights, as
//! PyTorch's DistributedDataParallel does. The processes find each other through rank 0's
//! rendezvous (`MASTER_ADDR:MASTER_PORT`, set by `ember launch` or torchrun); on CUDA the
//! gradients then travel through NCCL (the `nccl` feature), elsewhere through rank 0 over
//! TCP (as PyTorch's gloo backend serves CPU tensors).
//!
//! The communicator is process-wide, as `torch.distributed`'s default group is: the
//! optimizer's backward pass, the loops and the loaders consult it without every tool
//! threading it through.

mod flat;
#[cfg(feature = "nccl")]
mod nccl;
mod tcp;

use std::sync::OnceLock;
use std::time::Duration;

use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Result, Tensor, Var};
use ember_core::dist::World;

pub use tcp::TcpGroup;

/// The operations data parallelism needs, on 1-d tensors.
pub trait Collective: Send + Sync {
    /// The element-wise mean of `t` (f32 or f64) over all ranks, the same on every rank.
    fn all_reduce_mean(&self, t: &Tensor) -> Result<Tensor>;
    /// Rank 0's `t` on every rank.
    fn broadcast(&self, t: &Tensor) -> Result<Tensor>;
    /// Every rank's `t` (the same length on every rank), concatenated in rank order.
    fn all_gather(&self, t: &Tensor) -> Result<Tensor>;
}

static GROUP: OnceLock<Box<dyn Collective>> = OnceLock::new();

/// How long a rank waits for the others to reach the rendezvous.
pub const RENDEZVOUS_TIMEOUT: Duration = Duration::from_secs(300);

/// Joins the other ranks when a launcher started this process (`world`; even as the only
/// rank), once per process; a process started on its own does nothing.
pub fn init(world: &World, device: &Device) -> Result<()> {
    if !world.launched || GROUP.get().is_some() {
        return Ok(());
    }
    let tcp = TcpGroup::connect(world, RENDEZVOUS_TIMEOUT)?;
    let group: Box<dyn Collective> = match device {
        #[cfg(feature = "nccl")]
        Device::Cuda(dev) => Box::new(nccl::NcclGroup::join(&tcp, world, dev)?),
        Device::Cpu => Box::new(tcp),
        _ => {
            if world.is_primary() {
                eprintln!(
                    "warning: this binary was built without NCCL (--features nccl): gradients travel through the host"
                );
            }
            Box::new(tcp)
        }
    };
    let _ = GROUP.set(group);
    Ok(())
}

/// The communicator, when a launcher started this process (even as its only rank).
pub fn group() -> Option<&'static dyn Collective> {
    GROUP.get().map(|g| g.as_ref())
}

/// Replaces every gradient of `params` in `grads` by its mean over the ranks (f64
/// gradients in f64, all others in f32), in one collective call per type.
pub fn average_gradients<'a>(
    group: &dyn Collective,
    grads: &mut GradStore,
    params: impl Iterator<Item = &'a Var>,
) -> Result<()> {
    let mut present = Vec::new();
    for var in params {
        if let Some(g) = grads.get(var) {
            let wire = if g.dtype() == DType::F64 {
                DType::F64
            } else {
                DType::F32
            };
            present.push((var.clone(), g.to_dtype(wire)?));
        }
    }
    let tensors: Vec<Tensor> = present.iter().map(|(_, g)| g.clone()).collect();
    let averaged = flat::per_dtype(&tensors, |flat| group.all_reduce_mean(flat))?;
    for ((var, _), g) in present.iter().zip(averaged) {
        // Keep a full-precision gradient: the optimizer steps through f32 masters.
        let g = if needs_own_dtype(var.dtype()) {
            g.to_dtype(var.dtype())?
        } else {
            g
        };
        grads.insert(var, g);
    }
    Ok(())
}

/// f32 and f64 parameters take their gradients in their own type; bf16/f16 ones keep the
/// f32 mean (their optimizer steps f32 masters).
fn needs_own_dtype(dtype: DType) -> bool {
    !crate::precision::needs_master(dtype)
}

/// Sets every variable to rank 0's value: the same start on every rank, and rank 0's
/// batch-norm statistics before an evaluation (DDP's `broadcast_buffers`).
pub fn broadcast_vars<'a>(
    group: &dyn Collective,
    vars: impl Iterator<Item = &'a Var>,
) -> Result<()> {
    let vars: Vec<&Var> = vars.collect();
    let tensors: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
    let synced = flat::per_dtype(&tensors, |flat| group.broadcast(flat))?;
    for (var, t) in vars.iter().zip(synced) {
        var.set(&t)?;
    }
    Ok(())
}

/// Every rank's `t` concatenated along the first dimension in rank order (`t` itself when
/// alone), without gradient: the official `concat_all_gather` (MoCo, ReSSL), for keys of
/// every rank's shard entering a queue and for shuffled batch norm.
pub fn all_gather(t: &Tensor) -> Result<Tensor> {
    let Some(group) = group() else {
        return Ok(t.clone());
    };
    let mut dims = t.dims().to_vec();
    let gathered = group.all_gather(&t.detach().flatten_all()?)?;
    dims[0] *= ember_core::dist::world().size;
    gathered.reshape(dims)
}

/// `forward` of the whole global batch (every rank's `x`, in rank order), computed the way
/// the official key encoders of MoCo and ReSSL compute it under DDP: the gathered batch is
/// shuffled by a permutation from `rng` (the same on every rank; the official code
/// broadcasts rank 0's), each rank runs `forward` on its share of the shuffled batch, and
/// the outputs are gathered and put back in order. Batch norm in `forward` so sees other
/// images than the student's shard (shuffled batch norm). Without gradient; alone,
/// `forward(x)`. [`own_rows`] takes this rank's rows from the result.
pub fn forward_shuffled(
    x: &Tensor,
    rng: &mut ember_core::EmberRng,
    forward: impl FnOnce(&Tensor) -> Result<Tensor>,
) -> Result<Tensor> {
    if group().is_none() {
        return Ok(forward(x)?.detach());
    }
    let (rank, local) = (ember_core::dist::world().rank, x.dim(0)?);
    let all = all_gather(x)?;
    let plan = ShufflePlan::new(rng.permutation(all.dim(0)?), rank, local);
    let share = Tensor::from_vec(plan.share, local, x.device())?;
    let shuffled = all_gather(&forward(&all.index_select(&share, 0)?)?)?;
    let n = plan.position.len();
    shuffled.index_select(&Tensor::from_vec(plan.position, n, x.device())?, 0)
}

/// The indices of a shuffled forward pass: `share`, the rows of the gathered batch this rank
/// runs (its slice of the permutation), and `position`, where each image's output lands in
/// the gathered outputs (the inverse permutation).
struct ShufflePlan {
    share: Vec<u32>,
    position: Vec<u32>,
}

impl ShufflePlan {
    fn new(order: Vec<usize>, rank: usize, local: usize) -> Self {
        let mut position = vec![0u32; order.len()];
        for (row, &image) in order.iter().enumerate() {
            position[image] = row as u32;
        }
        let share = order[rank * local..(rank + 1) * local]
            .iter()
            .map(|&i| i as u32)
            .collect();
        Self { share, position }
    }
}

/// This rank's rows of a global batch gathered in rank order (all of them when alone).
pub fn own_rows(all: &Tensor) -> Result<Tensor> {
    let world = ember_core::dist::world();
    let local = all.dim(0)? / world.size;
    all.narrow(0, world.rank * local, local)
}

/// From now on every training-mode batch norm of this process normalises with the
/// statistics of the whole global batch (`--sync-bn`, PyTorch's `SyncBatchNorm`). Alone or
/// as the only rank nothing changes: the shard is the batch (PyTorch skips the exchange for
/// a world of one too).
pub fn synchronise_batch_norm() {
    let Some(group) = group() else {
        return;
    };
    let size = ember_core::dist::world().size as f64;
    if size < 2.0 {
        return;
    }
    ember_ops::sync_batch_norm::synchronise(std::sync::Arc::new(move |t: &Tensor| {
        (group.all_reduce_mean(&t.flatten_all()?)? * size)?.reshape(t.shape())
    }));
}

/// The element-wise sums of `values` over the ranks (the values themselves when alone), by
/// way of a tensor on `device` (NCCL exchanges device memory).
pub fn sum_over_ranks(values: Vec<f64>, device: &Device) -> Result<Vec<f64>> {
    let Some(group) = group() else {
        return Ok(values);
    };
    let size = ember_core::dist::world().size as f64;
    let n = values.len();
    let mean = group.all_reduce_mean(&Tensor::from_vec(values, n, device)?)?;
    (mean * size)?.to_vec1::<f64>()
}

/// The name of a random stream for this rank: rank 0 keeps `name` (so a run alone is the
/// run it always was), the other ranks draw their own (drop-path and dropout masks must
/// differ between the shards of a batch, as they differ between its images).
pub fn rank_stream(name: String) -> String {
    match ember_core::dist::world().rank {
        0 => name,
        r => format!("{name}/rank{r}"),
    }
}

/// Rank 0's batch-norm statistics (the variables that are not trained) on every rank,
/// before an evaluation or a checkpoint.
pub fn sync_buffers(vars: &ember_core::SeededVarMap) -> Result<()> {
    if let Some(group) = group() {
        let named = vars.named();
        let buffers = named
            .iter()
            .filter(|(k, _)| ember_core::checkpoint::is_buffer(k))
            .map(|(_, v)| v);
        broadcast_vars(group, buffers)?;
    }
    Ok(())
}

/// Rank 0's value of every variable on every rank: the same start, whatever each rank
/// initialised or restored.
pub fn sync_all(vars: &ember_core::SeededVarMap) -> Result<()> {
    if let Some(group) = group() {
        let named = vars.named();
        broadcast_vars(group, named.iter().map(|(_, v)| v))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::ShufflePlan;

    /// Each of 3 ranks runs its share of a shuffled global batch of 12; the shares' outputs
    /// gathered in rank order and read at `position` are the images in their own order.
    #[test]
    fn a_shuffled_pass_puts_every_output_back_in_place() {
        let (ranks, local) = (3, 4);
        let order = ember_core::EmberRng::new(7).permutation(ranks * local);
        let gathered: Vec<u32> = (0..ranks)
            .flat_map(|rank| ShufflePlan::new(order.clone(), rank, local).share)
            .collect();
        assert_ne!(
            gathered,
            (0..12).collect::<Vec<u32>>(),
            "the batch is shuffled"
        );
        for rank in 0..ranks {
            let plan = ShufflePlan::new(order.clone(), rank, local);
            let restored: Vec<u32> = plan
                .position
                .iter()
                .map(|&row| gathered[row as usize])
                .collect();
            assert_eq!(restored, (0..12).collect::<Vec<u32>>());
        }
    }
}
