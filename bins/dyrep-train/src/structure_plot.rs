//! `structure.png`: how many branches each growable layer held after each epoch (a grid,
//! layers by epochs), from the `rep_branches` field of the run's metrics.

use std::collections::BTreeMap;

use ember_core::plot::{draw_grid, Grid};
use ember_core::{Result, RunDir};

/// Draws the run's structure evolution; false when its metrics hold none (or when this
/// process is not the rank that writes).
pub fn draw(run: &RunDir) -> Result<bool> {
    let Some(path) = run.to_write("structure.png") else {
        return Ok(false);
    };
    let mut epochs = Vec::new();
    let mut layers: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for record in run.read_metrics()? {
        let (Some(epoch), Some(counts)) =
            (record["epoch"].as_u64(), record["rep_branches"].as_object())
        else {
            continue;
        };
        let column = epochs.len();
        epochs.push(epoch.to_string());
        for (layer, n) in counts {
            let row = layers.entry(layer.clone()).or_default();
            row.resize(column, 1.0);
            row.push(n.as_f64().unwrap_or(1.0));
        }
    }
    if epochs.is_empty() {
        return Ok(false);
    }
    for row in layers.values_mut() {
        row.resize(epochs.len(), 1.0);
    }
    // Forward order reads best: the stem, then the stages.
    let mut rows: Vec<(String, Vec<f64>)> = layers.into_iter().collect();
    rows.sort_by_key(|(name, _)| (name != "conv1", name.clone()));
    let grid = Grid {
        title: "branches per layer after each epoch".into(),
        x_label: "epoch".into(),
        rows: rows.iter().map(|(n, _)| n.clone()).collect(),
        columns: epochs,
        values: rows.into_iter().map(|(_, v)| v).collect(),
    };
    draw_grid(&path, &grid)?;
    Ok(true)
}
