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

    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    pub fn bias(&self) -> &Tensor {
        &self.bias
    }

    pub fn running_mean(&self) -> &Tensor {
        &self.running_mean
    }

    pub fn running_var(&self) -> &Tensor {
        &self.running_var
    }

    pub fn eps(&self) -> f64 {
        self.eps
    }

    /// The per-channel eval-mode map `x -> scale * x + shift`: `scale = gamma /
    /// sqrt(running_var + eps)`, `shift = beta - running_mean * scale` (detached; for
    /// folding into a convolution).
    pub fn eval_affine(&self) -> Result<(Tensor, Tensor)> {
        let scale = (self.weight.detach() / (self.running_var.detach() + self.eps)?.sqrt()?)?;
        let shift = (self.bias.detach() - (self.running_mean.detach() * &scale)?)?;
        Ok((scale, shift))
    }

    /// `reset_running_stats()`: running mean 0, running variance 1.
    pub fn reset_running(&self) -> Result<()> {
        set_variable(&self.running_mean, &self.running_mean.zeros_like()?)?;
        set_variable(&self.running_var, &self.running_var.ones_like()?)
    }

    /// Sets the scale and shift to constants.
    pub fn set_affine(&self, gamma: f64, beta: f64) -> Result<()> {
        set_variable(&self.weight, &(self.weight.ones_like()? * gamma)?)?;
        set_variable(&self.bias, &(self.bias.ones_like()? * beta)?)
    }

    /// Training-mode forward whose running statistics move by `momentum` (PyTorch's
    /// `momentum=None` cumulative average is `1 / n` at the n-th batch).
    pub fn forward_train_momentum(&self, x: &Tensor, momentum: f64) -> Result<Tensor> {
        let (w, b) = (Some(&self.weight), Some(&self.bias));
        let (y, stats) = batch_norm_train(x, w, b, self.eps)?;
        self.update_running(&self.running_mean, &stats.mean, momentum)?;
        self.update_running(&self.running_var, &stats.unbiased_var()?, momentum)?;
        Ok(y)
    }

    fn update_running(&self, stat: &Tensor, new: &Tensor, momentum: f64) -> Result<()> {
        // Only a var map hands out variables; weights loaded read-only (inference) never
        // train, so there is nothing to update.
        if stat.is_variable() {
            let blended = ((stat * (1.0 - momentum))? + (new * momentum)?)?;
            Var::from_tensor(stat)?.set(&blended.to_dtype(stat.dtype())?)?;
        }
        Ok(())
    }
}

/// Overwrites a variable's values in place (every holder of the tensor sees them).
pub fn set_variable(t: &Tensor, value: &Tensor) -> Result<()> {
    if !t.is_variable() {
        candle_core::bail!("cannot set a tensor that is not a variable")
    }
    Var::from_tensor(t)?.set(&value.to_dtype(t.dtype())?.to_device(t.device())?)
}

impl ModuleT for BatchNorm2d {
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        if !train {
            return batch_norm(
                x,
                &self.running_mean,
                &self.running_var,
                Some(&self.weight),
                Some(&self.bias),
                self.eps,
                BatchNormMode::Eval,
            );
        }
        self.forward_train_momentum(x, self.momentum)
    }
}
