//! Loading named tensors (a checkpoint, official weights) into a model's variables.

use std::collections::HashMap;

use candle_core::Tensor;
use candle_nn::VarMap;
use ember_core::checkpoint::STATE_PREFIX;
use ember_core::{EmberError, Result};

/// PyTorch buffers a model here does not keep: BN's step counter (unused with a fixed
/// momentum) and Swin-style relative position indices (recomputed from the window size).
fn ignorable(name: &str) -> bool {
    name.ends_with("num_batches_tracked")
        || name.ends_with("relative_position_index")
        || name.starts_with(STATE_PREFIX)
}

/// Sets every variable of `vars` from `tensors` (same names and shapes, cast to the
/// variable's dtype and device). A missing, extra or misshapen tensor is bad input that
/// names it: the weights belong to another model. `what` names the source in the error.
pub fn load_into(vars: &VarMap, tensors: &HashMap<String, Tensor>, what: &str) -> Result<()> {
    let data = vars.data().lock().unwrap();
    let mut missing: Vec<&str> = data
        .keys()
        .filter(|k| !tensors.contains_key(*k))
        .map(String::as_str)
        .collect();
    let mut extra: Vec<&str> = tensors
        .keys()
        .filter(|k| !data.contains_key(*k) && !ignorable(k))
        .map(String::as_str)
        .collect();
    missing.sort();
    extra.sort();
    if !missing.is_empty() || !extra.is_empty() {
        let list = |v: &[&str]| {
            let shown: Vec<&str> = v.iter().take(3).copied().collect();
            let more = if v.len() > 3 {
                format!(" and {} more", v.len() - 3)
            } else {
                String::new()
            };
            format!("{}{more}", shown.join(", "))
        };
        let mut parts = Vec::new();
        if !missing.is_empty() {
            parts.push(format!("lacks {}", list(&missing)));
        }
        if !extra.is_empty() {
            parts.push(format!("has unexpected {}", list(&extra)));
        }
        return Err(EmberError::bad_input(format!(
            "{what} does not fit this model: it {}",
            parts.join(" and ")
        )));
    }
    for (name, var) in data.iter() {
        let t = &tensors[name];
        if t.dims() != var.dims() {
            return Err(EmberError::bad_input(format!(
                "{what} does not fit this model: {name} has shape {:?}, the model needs {:?}",
                t.dims(),
                var.dims()
            )));
        }
        var.set(&t.to_dtype(var.dtype())?.to_device(var.device())?)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    #[test]
    fn loads_matching_tensors_and_names_mismatches() {
        let map = ember_core::SeededVarMap::new(0);
        let vb = map.var_builder(DType::F32, &Device::Cpu);
        vb.get_with_hints((2, 2), "a.weight", candle_nn::Init::Const(0.))
            .unwrap();
        let t = Tensor::ones((2, 2), DType::F64, &Device::Cpu).unwrap();
        let mut tensors = HashMap::from([("a.weight".to_string(), t.clone())]);
        tensors.insert(
            "a.num_batches_tracked".into(),
            Tensor::new(0i64, &Device::Cpu).unwrap(),
        );
        load_into(map.vars(), &tensors, "w.safetensors").unwrap();
        let v = map.vars().data().lock().unwrap()["a.weight"]
            .as_tensor()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert_eq!(v, 4.0);

        tensors.insert("b.weight".into(), t.clone());
        let err = load_into(map.vars(), &tensors, "w.safetensors").unwrap_err();
        assert!(err.to_string().contains("unexpected b.weight"), "{err}");
        let wrong = HashMap::from([(
            "a.weight".to_string(),
            Tensor::ones(3, DType::F32, &Device::Cpu).unwrap(),
        )]);
        let err = load_into(map.vars(), &wrong, "w.safetensors").unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("shape [3]"), "{err}");
    }
}
