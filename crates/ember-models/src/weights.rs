//! Loading named tensors (a checkpoint, official weights) into a model's variables.

use std::collections::HashMap;

use candle_core::Tensor;
use candle_nn::VarMap;
use ember_core::checkpoint::STATE_PREFIX;
use ember_core::{EmberError, Result};

/// PyTorch buffers a model here does not keep: BN's step counter (unused with a fixed
/// momentum), Swin-style relative position indices (recomputed from the window size) and
/// MAE's frozen sin-cos decoder position embedding (recomputed from its shape).
fn ignorable(name: &str) -> bool {
    name.ends_with("num_batches_tracked")
        || name.ends_with("relative_position_index")
        || name == "decoder_pos_embed"
        || name.starts_with(STATE_PREFIX)
}

/// Names in `tensors` that no variable of `data` has (and that are not ignorable), sorted.
fn unexpected<'a, V>(
    data: &HashMap<String, V>,
    tensors: &'a HashMap<String, Tensor>,
) -> Vec<&'a str> {
    let mut extra: Vec<&str> = tensors
        .keys()
        .filter(|k| !data.contains_key(*k) && !ignorable(k))
        .map(String::as_str)
        .collect();
    extra.sort();
    extra
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
    let extra = unexpected(&data, tensors);
    missing.sort();
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

/// Sets the variables of `vars` from pre-trained `tensors` to fine-tune them: tensors of
/// the same shape are copied; under `head` (the classifier's name prefix) a different shape
/// keeps the fresh initialisation (a new class count); a conv weight trained on more input
/// channels than the model has one is summed over them (RGB weights for grey images, as
/// timm's `adapt_input_conv`). Anything else that does not match is bad input. Returns a
/// note per adapted tensor.
pub fn load_pretrained(
    vars: &VarMap,
    tensors: &HashMap<String, Tensor>,
    head: &str,
    what: &str,
) -> Result<Vec<String>> {
    let data = vars.data().lock().unwrap();
    let misfit =
        |detail: String| EmberError::bad_input(format!("{what} does not fit this model: {detail}"));
    if let Some(extra) = unexpected(&data, tensors).first() {
        return Err(misfit(format!("it has unexpected {extra}")));
    }
    let mut notes = Vec::new();
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    for name in names {
        let var = &data[name];
        let t = tensors
            .get(name)
            .ok_or_else(|| misfit(format!("it lacks {name}")))?;
        let (have, need) = (t.dims(), var.dims());
        let value = if have == need {
            t.clone()
        } else if name.starts_with(head) {
            notes.push(format!(
                "{name} {have:?} -> {need:?}: new classifier, freshly initialised"
            ));
            continue;
        } else if have.len() == 4 && need[1] == 1 && have[0] == need[0] && have[2..] == need[2..] {
            notes.push(format!("{name}: {} input channels summed into 1", have[1]));
            t.sum_keepdim(1)?
        } else {
            return Err(misfit(format!(
                "{name} has shape {have:?}, the model needs {need:?}"
            )));
        };
        var.set(&value.to_dtype(var.dtype())?.to_device(var.device())?)?;
    }
    Ok(notes)
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

    #[test]
    fn pretrained_weights_adapt_the_head_and_the_input_channels() {
        let map = ember_core::SeededVarMap::new(0);
        let vb = map.var_builder(DType::F32, &Device::Cpu);
        let hint = candle_nn::Init::Const(0.);
        vb.get_with_hints((2, 1, 3, 3), "stem.weight", hint)
            .unwrap();
        vb.get_with_hints((10, 4), "head.weight", hint).unwrap();
        let dev = &Device::Cpu;
        let tensors = HashMap::from([
            (
                "stem.weight".to_string(),
                Tensor::ones((2, 3, 3, 3), DType::F32, dev).unwrap(),
            ),
            (
                "head.weight".to_string(),
                Tensor::ones((1000, 4), DType::F32, dev).unwrap(),
            ),
        ]);
        let notes = load_pretrained(map.vars(), &tensors, "head.", "w").unwrap();
        assert_eq!(notes.len(), 2, "{notes:?}");
        let vars = map.vars().data().lock().unwrap();
        let sum = |n: &str| {
            vars[n]
                .as_tensor()
                .sum_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap()
        };
        assert_eq!(sum("stem.weight"), 2.0 * 9.0 * 3.0);
        assert_eq!(sum("head.weight"), 0.0);
        drop(vars);

        let wrong = HashMap::from([(
            "stem.weight".to_string(),
            Tensor::ones((5, 3, 3, 3), DType::F32, dev).unwrap(),
        )]);
        let err = load_pretrained(map.vars(), &wrong, "head.", "w").unwrap_err();
        assert_eq!(err.exit_code(), 2);
    }
}
