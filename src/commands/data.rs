//! `ember data preview`: what a dataset looks like, as a PNG grid. For data labelled per
//! pixel each image is followed by itself with the classes coloured in (ember_core's
//! palette), so a user sees what the model is asked to predict.

use std::str::FromStr;

use ember_core::mosaic::{write_mosaic, Tile};
use ember_core::{EmberError, Result};
use ember_data::{DataSource, Dataset};
use serde_json::{json, Value};

use crate::cli::{DataCommand, PreviewCommand, PreviewSplit};

pub fn run(cmd: &DataCommand) -> Result<Value> {
    match cmd {
        DataCommand::Preview(p) => preview(p),
    }
}

fn preview(cmd: &PreviewCommand) -> Result<Value> {
    if cmd.count == 0 || cmd.columns == 0 || cmd.scale == 0 {
        return Err(EmberError::bad_input(
            "--count, --columns and --scale must be at least 1",
        ));
    }
    let data = ember_data::open(&DataSource::from_str(&cmd.data)?, 3, 32)?;
    let split = match cmd.split {
        PreviewSplit::Train => data.train,
        PreviewSplit::Test => data.test,
    };
    let count = cmd.count.min(split.len());
    let tiles = (0..count)
        .map(|i| tiles_of(split.as_ref(), i))
        .collect::<Result<Vec<_>>>()?;
    let per_row = cmd.columns;
    let rows: Vec<Vec<Tile>> = tiles
        .chunks(per_row)
        .map(|chunk| chunk.iter().flatten().cloned().collect())
        .collect();
    write_mosaic(&cmd.out, &rows, cmd.scale, 2)?;
    Ok(json!({
        "command": "data preview",
        "data": split.source(),
        "images": count,
        "per_pixel_labels": split.dense(),
        "classes": split.classes(),
        "out": cmd.out.display().to_string(),
    }))
}

/// Item `i` as shown: the image, and for per-pixel labels the image with them coloured in.
fn tiles_of(data: &dyn Dataset, i: usize) -> Result<Vec<Tile>> {
    if data.dense() {
        let (img, _, labels) = data.get_dense(i)?;
        let grey: Vec<f32> = grey_of(&img);
        let size = (img.height, img.width);
        Ok(vec![
            Tile::from_chw(&grey, (1, size.0, size.1), (0.0, 1.0)),
            Tile::overlay(&grey, size, &labels),
        ])
    } else {
        let (img, _) = data.get(i)?;
        Ok(vec![Tile::from_chw(
            &img.data,
            (img.channels, img.height, img.width),
            (0.0, 1.0),
        )])
    }
}

/// The mean over channels.
fn grey_of(img: &ember_data::Chw) -> Vec<f32> {
    let plane = img.height * img.width;
    (0..plane)
        .map(|p| {
            (0..img.channels)
                .map(|c| img.data[c * plane + p])
                .sum::<f32>()
                / img.channels as f32
        })
        .collect()
}
