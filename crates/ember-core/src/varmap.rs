//! A `VarMap` whose new variables are drawn from a seed, so that building the same model
//! with the same seed gives the same weights (candle's `VarMap` draws from an unseeded RNG).
//!
//! Models keep using candle's `VarBuilder` and its `Init` hints; only the backend changes:
//! `SeededVarMap::new(seed).var_builder(dtype, &device)`. Each variable draws from its own
//! stream keyed by (seed, full name), so adding a layer does not shift the weights of the
//! others. A rule can replace the hint for chosen names (timm's trunc-normal for ViT
//! linears, say), the way a PyTorch model's `_init_weights` overrides module defaults.

use std::sync::Arc;

use candle_core::{DType, Device, Shape, Tensor, Var};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{VarBuilder, VarMap};

use crate::{EmberRng, Init};

/// Picks an initialiser for a variable from its full name and shape, or `None` to keep the
/// model's own hint.
pub type InitRule = Arc<dyn Fn(&str, &Shape) -> Option<Init> + Send + Sync>;

#[derive(Clone)]
pub struct SeededVarMap {
    vars: VarMap,
    seed: u64,
    rule: Option<InitRule>,
}

impl SeededVarMap {
    pub fn new(seed: u64) -> Self {
        Self {
            vars: VarMap::new(),
            seed,
            rule: None,
        }
    }

    pub fn with_rule(mut self, rule: InitRule) -> Self {
        self.rule = Some(rule);
        self
    }

    /// The variables created so far (for the optimizer, saving and loading).
    pub fn vars(&self) -> &VarMap {
        &self.vars
    }

    /// Every variable (weights and buffers) with its name, sorted by name.
    pub fn named(&self) -> Vec<(String, Var)> {
        let mut all: Vec<(String, Var)> = self
            .vars
            .data()
            .lock()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// Every variable's tensor with its name, sorted by name (for a checkpoint).
    pub fn tensors(&self) -> Vec<(String, Tensor)> {
        self.named()
            .into_iter()
            .map(|(k, v)| (k, v.as_tensor().clone()))
            .collect()
    }

    /// Every variable's value as a constant, detached from autograd: weights for a frozen
    /// model, whose forward then records no graph and frees its activations as it goes.
    pub fn constants(&self) -> std::collections::HashMap<String, Tensor> {
        self.named()
            .into_iter()
            .map(|(k, v)| (k, v.as_tensor().detach()))
            .collect()
    }

    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Drops the variable `name` (a model whose structure changes during training); true
    /// when it existed.
    pub fn remove(&self, name: &str) -> bool {
        self.vars.data().lock().unwrap().remove(name).is_some()
    }

    /// Drops every variable whose name starts with `prefix` followed by a `.`.
    pub fn remove_under(&self, prefix: &str) {
        let dotted = format!("{prefix}.");
        self.vars
            .data()
            .lock()
            .unwrap()
            .retain(|k, _| !k.starts_with(&dotted));
    }

    pub fn var_builder(&self, dtype: DType, device: &Device) -> VarBuilder<'static> {
        VarBuilder::from_backend(Box::new(self.clone()), dtype, device.clone())
    }
}

impl SimpleBackend for SeededVarMap {
    fn get(
        &self,
        shape: Shape,
        name: &str,
        hint: candle_nn::Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let mut data = self.vars.data().lock().unwrap();
        if let Some(var) = data.get(name) {
            if var.shape() != &shape {
                candle_core::bail!("shape mismatch on {name}: {shape:?} <> {:?}", var.shape())
            }
            return Ok(var.as_tensor().clone());
        }
        let init = self
            .rule
            .as_ref()
            .and_then(|rule| rule(name, &shape))
            .unwrap_or_else(|| Init::from(hint));
        let mut rng = EmberRng::for_name(self.seed, name);
        let tensor = init
            .tensor(shape, dtype, dev, &mut rng)
            .map_err(candle_core::Error::wrap)?;
        let var = Var::from_tensor(&tensor)?;
        let tensor = var.as_tensor().clone();
        data.insert(name.to_string(), var);
        Ok(tensor)
    }

    fn get_unchecked(&self, name: &str, _: DType, _: &Device) -> candle_core::Result<Tensor> {
        match self.vars.data().lock().unwrap().get(name) {
            Some(var) => Ok(var.as_tensor().clone()),
            None => candle_core::bail!("no variable named {name} (a seeded var map needs a shape)"),
        }
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.vars.data().lock().unwrap().contains_key(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(map: &SeededVarMap) -> (Tensor, Tensor) {
        let vb = map.var_builder(DType::F32, &Device::Cpu);
        let w = vb
            .pp("fc")
            .get_with_hints((4, 3), "weight", candle_nn::init::DEFAULT_KAIMING_NORMAL)
            .unwrap();
        let b = vb
            .pp("fc")
            .get_with_hints(4, "bias", candle_nn::Init::Const(0.5))
            .unwrap();
        (w, b)
    }

    fn values(t: &Tensor) -> Vec<f32> {
        t.flatten_all().unwrap().to_vec1().unwrap()
    }

    #[test]
    fn same_seed_same_model() {
        let (w1, b1) = build(&SeededVarMap::new(11));
        let (w2, _) = build(&SeededVarMap::new(11));
        let (w3, _) = build(&SeededVarMap::new(12));
        assert_eq!(values(&w1), values(&w2));
        assert_ne!(values(&w1), values(&w3));
        assert_eq!(values(&b1), vec![0.5; 4]);
    }

    #[test]
    fn creation_order_does_not_change_the_weights() {
        let a = SeededVarMap::new(3);
        let vb = a.var_builder(DType::F32, &Device::Cpu);
        let _extra = vb.get_with_hints(
            10,
            "other",
            candle_nn::Init::Randn {
                mean: 0.,
                stdev: 1.,
            },
        );
        let (w_after, _) = build(&a);
        let (w_alone, _) = build(&SeededVarMap::new(3));
        assert_eq!(values(&w_after), values(&w_alone));
    }

    #[test]
    fn variables_are_shared_and_trainable() {
        let map = SeededVarMap::new(0);
        let (w, _) = build(&map);
        let (w_again, _) = build(&map);
        assert_eq!(w.id(), w_again.id());
        assert_eq!(map.vars().all_vars().len(), 2);
        let grads = w.sqr().unwrap().sum_all().unwrap().backward().unwrap();
        assert!(grads.get(&w).is_some());
    }

    #[test]
    fn a_rule_overrides_the_hint_for_chosen_names() {
        let rule: InitRule =
            Arc::new(|name, _| name.ends_with("bias").then_some(Init::Const(-1.0)));
        let (_, b) = build(&SeededVarMap::new(0).with_rule(rule));
        assert_eq!(values(&b), vec![-1.0; 4]);
    }

    #[test]
    fn shape_mismatch_is_an_error() {
        let map = SeededVarMap::new(0);
        build(&map);
        let vb = map.var_builder(DType::F32, &Device::Cpu);
        assert!(vb
            .pp("fc")
            .get_with_hints((5, 3), "weight", candle_nn::Init::Const(0.))
            .is_err());
    }
}
