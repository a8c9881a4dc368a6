//! `curves.png`: loss and accuracy per epoch, drawn with plotters. The font is compiled in
//! (DejaVu Sans Mono, `assets/fonts`) so plotting needs no system fonts or fontconfig.

use std::path::Path;
use std::sync::Once;

use plotters::prelude::*;
use plotters::style::{register_font, FontStyle};

use crate::error::{EmberError, Result};

const FONT: &[u8] = include_bytes!("../../../assets/fonts/DejaVuSansMono.ttf");
static REGISTER: Once = Once::new();

/// One line of a panel: a name and `(epoch, value)` points.
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

/// One panel: a title, a y-axis label and its lines.
pub struct Panel {
    pub title: String,
    pub y_label: String,
    pub series: Vec<Series>,
}

const COLOURS: [RGBColor; 4] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
];

/// Draws `panels` side by side into a PNG at `path` (written atomically). plotters renders
/// into memory and our `image` encodes the PNG: plotters' own encoder would pull in a second
/// version of the `image` crate.
pub fn draw_curves(path: &Path, panels: &[Panel]) -> Result<()> {
    REGISTER.call_once(|| {
        let _ = register_font("sans-serif", FontStyle::Normal, FONT);
    });
    let (w, h) = (520 * panels.len().max(1) as u32, 400);
    let mut rgb = vec![0u8; (w * h * 3) as usize];
    draw(&mut rgb, (w, h), panels)
        .map_err(|e| EmberError::Runtime(format!("plotting {}: {e}", path.display())))?;
    let mut png = Vec::new();
    image::RgbImage::from_raw(w, h, rgb)
        .expect("the buffer holds w x h RGB pixels")
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .map_err(|e| EmberError::Runtime(format!("encoding {}: {e}", path.display())))?;
    crate::atomic::write_atomic(path, &png)
}

fn draw(
    rgb: &mut [u8],
    size: (u32, u32),
    panels: &[Panel],
) -> std::result::Result<(), Box<dyn std::error::Error>> {
    let root = BitMapBackend::with_buffer(rgb, size).into_drawing_area();
    root.fill(&WHITE)?;
    let areas = root.split_evenly((1, panels.len().max(1)));
    for (panel, area) in panels.iter().zip(areas) {
        let points = panel.series.iter().flat_map(|s| s.points.iter());
        let (mut x1, mut y0, mut y1) = (1f64, f64::INFINITY, f64::NEG_INFINITY);
        for &(x, y) in points {
            x1 = x1.max(x);
            if y.is_finite() {
                y0 = y0.min(y);
                y1 = y1.max(y);
            }
        }
        if !y0.is_finite() {
            (y0, y1) = (0.0, 1.0);
        }
        let pad = ((y1 - y0) * 0.05).max(1e-3);
        let mut chart = ChartBuilder::on(&area)
            .caption(&panel.title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(56)
            .build_cartesian_2d(0f64..x1, (y0 - pad)..(y1 + pad))?;
        chart
            .configure_mesh()
            .x_desc("epoch")
            .y_desc(&panel.y_label)
            .label_style(("sans-serif", 13))
            .draw()?;
        for (i, s) in panel.series.iter().enumerate() {
            let colour = COLOURS[i % COLOURS.len()];
            chart
                .draw_series(LineSeries::new(
                    s.points.iter().copied(),
                    colour.stroke_width(2),
                ))?
                .label(&s.name)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], colour.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .label_font(("sans-serif", 13))
            .draw()?;
    }
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_a_png() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("curves.png");
        let line = |name: &str, f: fn(f64) -> f64| Series {
            name: name.into(),
            points: (1..=5).map(|e| (e as f64, f(e as f64))).collect(),
        };
        let panels = [
            Panel {
                title: "loss".into(),
                y_label: "cross-entropy".into(),
                series: vec![line("train", |e| 1.0 / e), line("test", |e| 1.2 / e)],
            },
            Panel {
                title: "accuracy".into(),
                y_label: "top-1 %".into(),
                series: vec![line("test", |e| 80.0 + e)],
            },
        ];
        draw_curves(&path, &panels).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert!(bytes.starts_with(b"\x89PNG"), "not a PNG");
        assert!(bytes.len() > 5000);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
