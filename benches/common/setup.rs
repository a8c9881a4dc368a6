//! What the model benches share: the device and dtype they run on, and the median of timed
//! steps.

#![allow(dead_code)]

use candle_core::{DType, Device};

/// `EMBER_BENCH_DEVICE` (cpu, cuda, ...; default cpu) and `EMBER_BENCH_DTYPE` (f32, bf16, f16).
pub fn device_and_dtype() -> (Device, DType) {
    let choice = std::env::var("EMBER_BENCH_DEVICE").unwrap_or_else(|_| "cpu".into());
    let dev = choice
        .parse::<ember_core::DeviceChoice>()
        .and_then(|c| c.open())
        .unwrap_or_else(|e| panic!("EMBER_BENCH_DEVICE={choice}: {e}"));
    let dtype = match std::env::var("EMBER_BENCH_DTYPE").as_deref() {
        Ok("bf16") => DType::BF16,
        Ok("f16") => DType::F16,
        _ => DType::F32,
    };
    (dev, dtype)
}

/// The Fashion-MNIST ResNet recipe's network: ResNet-18's basic blocks 2-2-2-2 with the
/// small-image stem (64 wide) and stage widths 16-32-64-128, 1 channel in, 10 classes.
pub fn resnet_recipe_config() -> serde_json::Value {
    serde_json::json!({"block": "basic", "layers": [2, 2, 2, 2], "channels": [16, 32, 64, 128],
                       "stem_width": 64, "stem_type": "small", "in_chans": 1, "num_classes": 10})
}

pub fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(|a, b| a.total_cmp(b));
    xs[xs.len() / 2]
}
