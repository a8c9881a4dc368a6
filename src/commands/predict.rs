use candle_core::{Device, Tensor, D};
use ember_core::{EmberError, Result};
use ember_ops::softmax;
use serde_json::{json, Value};

use crate::cli::PredictCommand;

/// One JSON object per image (returned as an array: the edge prints one line each).
pub fn run(cmd: &PredictCommand, device: &Device, dtype: candle_core::DType) -> Result<Value> {
    if cmd.top_k == 0 {
        return Err(EmberError::bad_input("--top-k must be at least 1"));
    }
    let (loaded, prep) = super::open_checkpoint(&cmd.checkpoint, device, dtype)?;
    let labels = &loaded.checkpoint.meta.labels;
    let mut data = Vec::new();
    for path in &cmd.images {
        data.extend(prep.load_image(path)?.data);
    }
    let x = Tensor::from_vec(
        data,
        (cmd.images.len(), prep.channels, prep.height, prep.width),
        device,
    )?
    .to_dtype(dtype)?;
    let probs: Vec<Vec<f32>> = softmax(&loaded.model.forward_t(&x, false)?, D::Minus1)?
        .to_dtype(candle_core::DType::F32)?
        .to_vec2()?;
    let out = cmd
        .images
        .iter()
        .zip(probs)
        .map(|(path, p)| {
            let mut order: Vec<usize> = (0..p.len()).collect();
            order.sort_by(|&a, &b| p[b].total_cmp(&p[a]));
            let top: Vec<Value> = order
                .iter()
                .take(cmd.top_k)
                .map(|&i| json!({ "label": labels.get(i).cloned().unwrap_or_else(|| i.to_string()), "index": i, "prob": p[i] }))
                .collect();
            json!({ "image": path.display().to_string(), "top": top })
        })
        .collect();
    Ok(Value::Array(out))
}
