//! `structure.png`: how many branches each growable layer held after each epoch, from the
//! `rep_branches` field of the run's metrics.

use std::collections::BTreeMap;

use ember_core::plot::{draw_curves, Panel, Series};
use ember_core::{Result, RunDir};

/// Draws the run's structure evolution; false when its metrics hold none.
pub fn draw(run: &RunDir) -> Result<bool> {
    let mut layers: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for record in run.read_metrics()? {
        let (Some(epoch), Some(counts)) = (record["epoch"].as_f64(), record["rep_branches"].as_object()) else {
            continue;
        };
        for (layer, n) in counts {
            if let Some(n) = n.as_f64() {
                layers.entry(layer.clone()).or_default().push((epoch, n));
            }
        }
    }
    if layers.is_empty() {
        return Ok(false);
    }
    let panel = Panel {
        title: "branches per layer".into(),
        y_label: "branches".into(),
        series: layers
            .into_iter()
            .map(|(name, points)| Series { name, points })
            .collect(),
    };
    draw_curves(&run.file("structure.png"), &[panel])?;
    Ok(true)
}
