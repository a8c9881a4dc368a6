use candle_core::{DType, Device};
use clap::Args;
use ember_core::{DeviceChoice, EmberError, Result};

/// Where and how to compute.
#[derive(Debug, Clone, Args)]
pub struct RuntimeArgs {
    /// Device: auto (CUDA or Metal when built in and present, else CPU), cpu, cuda[:N], metal.
    #[arg(long, default_value = "auto", global = true)]
    pub device: DeviceChoice,
    /// Floating-point type of weights and activations: f32, f64, or mixed precision: bf16
    /// or f16 compute with f32 master weights in the optimizer, norms, softmax and losses
    /// in f32, and for f16 dynamic loss scaling.
    #[arg(long, default_value = "f32", value_parser = ["f32", "f64", "bf16", "f16"], global = true)]
    pub dtype: String,
    /// Allow TF32 (10-bit mantissa) tensor-core GEMMs for f32 on CUDA, as PyTorch's
    /// `allow_tf32`; off by default, so f32 means f32. No effect on CPU.
    #[arg(long, global = true)]
    pub tf32: bool,
    /// Under `ember launch`: batch norm normalises with the statistics of the whole global
    /// batch, as in one process (PyTorch's SyncBatchNorm), instead of each rank's shard;
    /// costs two small all-reduces per batch norm each way. No effect in one process or a
    /// launch of one.
    #[arg(long, global = true)]
    pub sync_bn: bool,
    /// Seed for weights, data order and augmentation; the same seed gives the same run.
    #[arg(long, default_value_t = 0, global = true)]
    pub seed: u64,
    /// Compute threads (default: one per core).
    #[arg(long, global = true)]
    pub threads: Option<usize>,
}

impl RuntimeArgs {
    /// The `--dtype` as a candle dtype.
    pub fn dtype(&self) -> DType {
        match self.dtype.as_str() {
            "f64" => DType::F64,
            "bf16" => DType::BF16,
            "f16" => DType::F16,
            _ => DType::F32,
        }
    }

    /// Opens the device and sets the thread count, for a tool that runs in one process: one
    /// started as a rank of `ember launch` says so and stops (bad input).
    pub fn setup(&self) -> Result<(Device, DType)> {
        let world = ember_core::dist::init_world()?;
        if world.is_distributed() {
            let tool = std::env::args()
                .next()
                .map(|a| {
                    std::path::Path::new(&a)
                        .file_name()
                        .map_or(a.clone(), |f| f.to_string_lossy().into_owned())
                })
                .unwrap_or_default();
            return Err(EmberError::bad_input(format!(
                "{tool}: this command runs in one process; `ember launch` runs ember train, lightvit-train, dist-distill, maskd-distill distill, dyrep-train, the pre-training tools and the search tools' train"
            )));
        }
        let opened = self.open()?;
        crate::startup::compute_pool(None);
        Ok(opened)
    }

    /// As `setup`, for a tool whose training loop is data-parallel: under `ember launch`
    /// (or torchrun's variables) the process takes the GPU of its `LOCAL_RANK` (for
    /// `--device auto|cuda`) and joins the other ranks. The thread pool is left to the
    /// training loop, which builds it with the run's own thread count
    /// (`run_setup::continue_run`).
    pub fn setup_parallel(&self) -> Result<(Device, DType)> {
        let world = ember_core::dist::init_world()?;
        let mut runtime = self.clone();
        if world.is_distributed() {
            runtime.device = self.device.for_local_rank(world.local_rank);
        }
        let (device, dtype) = runtime.open()?;
        ember_train::dist::init(world, &device)?;
        if self.sync_bn {
            ember_train::dist::synchronise_batch_norm();
        }
        Ok((device, dtype))
    }

    fn open(&self) -> Result<(Device, DType)> {
        if self.threads == Some(0) {
            return Err(EmberError::bad_input("--threads must be at least 1"));
        }
        // Without `--threads` the pool waits: a resumed run takes the count it started with
        // (`run_setup::continue_run`), which is known only once its directory is read.
        if self.threads.is_some() {
            crate::startup::compute_pool(self.threads);
        }
        candle_core::cuda::set_gemm_reduced_precision_f32(self.tf32);
        Ok((self.device.open()?, self.dtype()))
    }
}
