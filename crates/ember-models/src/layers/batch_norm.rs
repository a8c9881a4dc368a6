use candle_core::{ModuleT, Result, Tensor, Var};
use candle_nn::{Init, VarBuilder};
use ember_ops::{batch_norm, batch_norm_train, BatchNormMode};

/// `torch.nn.BatchNorm2d(c)` (eps 1e-5, momentum 0.1) through Ember's fused batch-norm op.
///
/// In training mode it normalises with the batch statistics and updates the running
/// averages in place (unbiased variance, as PyTorch); the running statistics are the
/// VarBuilder's `running_mean` / `running_var`, so with a var map they are saved with the
/// weights. `num_batches_tracked` is not kept: with a fixed momentum PyTorch never reads it.
#[derive(Debug, Clone)]
pub struct BatchNorm2d {
    weight: Tensor,
    bias: Tensor,
    running_mean: Tensor,
    running_var: Tensor,
    eps: f64,
    momentum: f64,
}

impl BatchNorm2d {
    pub fn new(vb: VarBuilder, c: usize) -> Result<Self> {
        Self::with_weight_init(vb, c, 1.0)
    }

    /// With the scale initialised to `gamma` (0 zero-initialises a residual branch).
    pub fn with_weight_init(vb: VarBuilder, c: usize, gamma: f64) -> Result<Self> {
        Ok(Self {
            weight: vb.get_with_hints(c, "weight", Init::Const(gamma))?,
            bias: vb.get_with_hints(c, "bias", Init::Const(0.0))?,
            running_mean: vb.get_with_hints(c, "running_mean", Init::Const(0.0))?,
            running_var: vb.get_with_hints(c, "running_var", Init::Const(1.0))?,
            eps: 1e-5,
            momentum: 0.1,
        })
    }

    fn update_running(&self, stat: &Tensor, new: &Tensor) -> Result<()> {
        // Only a var map hands out variables; weights loaded read-only (inference) never
        // train, so there is nothing to update.
        if stat.is_variable() {
            let blended = ((stat * (1.0 - self.momentum))? + (new * self.momentum)?)?;
            Var::from_tensor(stat)?.set(&blended.to_dtype(stat.dtype())?)?;
        }
        Ok(())
    }
}

impl ModuleT for BatchNorm2d {
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let (w, b) = (Some(&self.weight), Some(&self.bias));
        if !train {
            return batch_norm(
                x,
                &self.running_mean,
                &self.running_var,
                w,
                b,
                self.eps,
                BatchNormMode::Eval,
            );
        }
        let (y, mean, var) = batch_norm_train(x, w, b, self.eps)?;
        let count = (x.elem_count() / x.dim(1)?) as f64;
        let unbiased = (&var * (count / (count - 1.0).max(1.0)))?;
        self.update_running(&self.running_mean, &mean)?;
        self.update_running(&self.running_var, &unbiased)?;
        Ok(y)
    }
}
