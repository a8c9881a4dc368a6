use std::str::FromStr;

use candle_core::{DType, Device};
use ember_core::{EmberError, Result};
use ember_data::{describe_classes, DataSource, Loader, LoaderConfig};
use ember_train::evaluate;
use serde_json::{json, Value};

use crate::cli::EvalCommand;

pub fn run(cmd: &EvalCommand, device: &Device, dtype: DType) -> Result<Value> {
    let (loaded, prep) = super::open_checkpoint(&cmd.checkpoint, device, dtype)?;
    let data = ember_data::open(
        &DataSource::from_str(&cmd.data)?,
        prep.channels,
        prep.height,
    )?;
    let labels = &loaded.checkpoint.meta.labels;
    if &data.classes != labels {
        return Err(EmberError::bad_input(format!(
            "the checkpoint knows {}; {} has {}: not the data it was trained for",
            describe_classes(labels),
            cmd.data,
            describe_classes(&data.classes)
        )));
    }
    let channels = data.test.image_dims()[0];
    if channels != prep.channels {
        return Err(EmberError::bad_input(format!(
            "the checkpoint expects {}-channel images, {} has {channels}",
            prep.channels, cmd.data
        )));
    }
    eprintln!("data: {}", data.test.source());
    let cfg = LoaderConfig {
        batch_size: cmd.batch_size,
        shuffle: false,
        drop_last: false,
        workers: cmd.workers,
        seed: 0,
        shard: ember_data::Shard::WHOLE,
    };
    let loader = Loader::new(data.test.clone(), prep.eval_pipeline(), cfg)?;
    let r = evaluate(loaded.model.as_ref(), &loader, device, dtype)?;
    let mut out = json!({
        "checkpoint": cmd.checkpoint,
        "arch": loaded.checkpoint.meta.arch,
        "data": data.test.source(),
        "images": r.images,
        "loss": r.loss,
        "top1": r.top1,
        "top5": r.top5,
    });
    if let Some(seg) = &r.segmentation {
        out["miou"] = json!(seg.miou);
        out["pixel_accuracy"] = json!(seg.pixel_accuracy);
        out["class_iou"] = json!(seg.class_iou);
    }
    Ok(out)
}
