//! Gradient checking: an op's analytic gradient (candle's backward through it) against
//! central finite differences, in f64.
//!
//! The function's output is reduced to a scalar through a fixed random projection
//! `L = sum(f(x) * r)`, so every output element takes part with its own weight (with a plain
//! sum, errors that cancel across outputs would go unseen). An input that receives no
//! gradient at all is an error, not a zero: that is how candle's silently cut gradients
//! (fused layer norm, softmax_last_dim) show up.

use candle_core::{DType, Result, Tensor, Var};
use ember_core::EmberRng;

#[derive(Debug, Clone, Copy)]
pub struct GradCheck {
    /// Finite-difference step.
    pub step: f64,
    /// Pass when `|analytic - numeric| <= atol + rtol * max(|analytic|, |numeric|)`.
    pub atol: f64,
    pub rtol: f64,
    /// Check every element of inputs up to this size, a random sample of this many above.
    pub max_coords: usize,
    pub seed: u64,
}

impl Default for GradCheck {
    fn default() -> Self {
        Self {
            step: 1e-6,
            atol: 1e-7,
            rtol: 1e-5,
            max_coords: 400,
            seed: 0,
        }
    }
}

/// What a passing check measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GradReport {
    pub coords: usize,
    pub max_abs_err: f64,
}

impl GradCheck {
    /// Checks the gradient of `f` with respect to every input in `inputs` (converted to f64).
    pub fn run(
        &self,
        inputs: &[Tensor],
        f: impl Fn(&[Tensor]) -> Result<Tensor>,
    ) -> Result<GradReport> {
        let vars = inputs
            .iter()
            .map(|t| Var::from_tensor(&t.to_dtype(DType::F64)?))
            .collect::<Result<Vec<_>>>()?;
        let tensors: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
        let mut rng = EmberRng::new(self.seed);
        let out = f(&tensors)?;
        let projection = rng
            .normal_tensor(out.shape().clone(), 0.0, 1.0, DType::F64, out.device())
            .map_err(candle_core::Error::wrap)?;
        let loss = |ts: &[Tensor]| -> Result<Tensor> {
            (f(ts)?.to_dtype(DType::F64)? * &projection)?.sum_all()
        };
        let grads = loss(&tensors)?.backward()?;

        let mut report = GradReport {
            coords: 0,
            max_abs_err: 0.0,
        };
        for (i, var) in vars.iter().enumerate() {
            let analytic: Vec<f64> = match grads.get(var) {
                Some(g) => g.flatten_all()?.to_vec1()?,
                None => candle_core::bail!(
                    "gradcheck: no gradient reached input {i} (shape {:?})",
                    var.dims()
                ),
            };
            let original = var.as_tensor().flatten_all()?.to_vec1::<f64>()?;
            let coords: Vec<usize> = if original.len() <= self.max_coords {
                (0..original.len()).collect()
            } else {
                rng.permutation(original.len())[..self.max_coords].to_vec()
            };
            let at = |values: &[f64]| -> Result<f64> {
                var.set(&Tensor::from_slice(values, var.shape(), var.device())?)?;
                loss(&tensors)?.to_scalar::<f64>()
            };
            let mut values = original.clone();
            for &c in &coords {
                values[c] = original[c] + self.step;
                let plus = at(&values)?;
                values[c] = original[c] - self.step;
                let minus = at(&values)?;
                values[c] = original[c];
                let numeric = (plus - minus) / (2.0 * self.step);
                let err = (analytic[c] - numeric).abs();
                if err > self.atol + self.rtol * analytic[c].abs().max(numeric.abs()) {
                    var.set(&Tensor::from_slice(&original, var.shape(), var.device())?)?;
                    candle_core::bail!(
                        "gradcheck: input {i} element {c}: analytic {} vs numeric {numeric} (error {err:.3e})",
                        analytic[c]
                    )
                }
                report.max_abs_err = report.max_abs_err.max(err);
            }
            var.set(&Tensor::from_slice(&original, var.shape(), var.device())?)?;
            report.coords += coords.len();
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn input(shape: (usize, usize)) -> Tensor {
        EmberRng::new(1)
            .normal_tensor(shape, 0.0, 1.0, DType::F64, &Device::Cpu)
            .unwrap()
    }

    #[test]
    fn passes_a_correct_gradient() {
        let x = input((3, 4));
        let report = GradCheck::default()
            .run(&[x], |t| t[0].sqr()?.exp())
            .unwrap();
        assert_eq!(report.coords, 12);
        assert!(report.max_abs_err < 1e-6);
    }

    #[test]
    fn catches_a_wrong_gradient() {
        // candle's max_pool2d(2) scales its gradient by 1/4 (specs/candle.md 1.1).
        let x = input((4, 4)).reshape((1, 1, 4, 4)).unwrap();
        let err = GradCheck::default()
            .run(&[x], |t| t[0].max_pool2d(2))
            .unwrap_err();
        assert!(err.to_string().contains("analytic"), "{err}");
    }

    #[test]
    fn catches_a_missing_gradient() {
        // candle_nn's fused softmax records no backward (specs/candle.md 1.1).
        let x = input((2, 5));
        let err = GradCheck::default()
            .run(&[x], |t| candle_nn::ops::softmax_last_dim(&t[0]))
            .unwrap_err();
        assert!(
            err.to_string().contains("no gradient reached input 0"),
            "{err}"
        );
    }
}
