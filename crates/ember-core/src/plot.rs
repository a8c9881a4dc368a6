//! `curves.png` (loss and accuracy per epoch) and value grids (a model's structure per
//! epoch), drawn with plotters. The font is compiled in (DejaVu Sans Mono, `assets/fonts`)
//! so plotting needs no system fonts or fontconfig.

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

/// A labelled grid of values, one cell per (row, column), shaded by value and annotated.
pub struct Grid {
    pub title: String,
    pub x_label: String,
    pub rows: Vec<String>,
    pub columns: Vec<String>,
    /// `values[row][column]`.
    pub values: Vec<Vec<f64>>,
}

type DrawResult = std::result::Result<(), Box<dyn std::error::Error>>;

/// Draws `panels` side by side into a PNG at `path` (written atomically), against epochs.
pub fn draw_curves(path: &Path, panels: &[Panel]) -> Result<()> {
    draw_curves_along(path, "epoch", panels)
}

/// [`draw_curves`] with another x axis (steps, say).
pub fn draw_curves_along(path: &Path, x_label: &str, panels: &[Panel]) -> Result<()> {
    let size = (520 * panels.len().max(1) as u32, 400);
    render(path, size, |rgb| draw(rgb, size, panels, x_label))
}

/// Draws `grid` into a PNG at `path` (written atomically).
pub fn draw_grid(path: &Path, grid: &Grid) -> Result<()> {
    let label = grid.rows.iter().map(|r| r.len()).max().unwrap_or(0) as u32;
    let (left, cell_w, cell_h) = (16 + 8 * label, 34u32, 24u32);
    let cols = grid.columns.len().max(1) as u32;
    let title = 11 * grid.title.len() as u32;
    let size = (
        (left + cols * cell_w).max(left + title) + 24,
        56 + grid.rows.len() as u32 * cell_h + 56,
    );
    render(path, size, |rgb| {
        draw_cells(rgb, size, grid, (left, cell_w, cell_h))
    })
}

/// A value image: `values[row * width + col]`, row 0 drawn at the top (a spectrogram with
/// its highest frequency first, say).
pub struct Heatmap {
    pub title: String,
    pub width: usize,
    pub height: usize,
    pub values: Vec<f32>,
}

/// Draws `maps` one above the other, each under its title, into a PNG at `path` (written
/// atomically). All share one colour scale (viridis-like, dark = low) over [`lo`, `hi`], so
/// they compare; each is stretched to 900 pixels wide and twice its height.
pub fn draw_heatmaps(path: &Path, maps: &[Heatmap], lo: f32, hi: f32) -> Result<()> {
    const WIDTH: u32 = 900;
    const TITLE: u32 = 26;
    let heights: Vec<u32> = maps.iter().map(|m| 2 * m.height as u32).collect();
    let size = (
        WIDTH + 16,
        heights.iter().map(|h| h + TITLE + 8).sum::<u32>() + 8,
    );
    render(path, size, |rgb| {
        {
            let root = BitMapBackend::with_buffer(rgb, size).into_drawing_area();
            root.fill(&WHITE)?;
            let mut y = 8i32;
            for (map, h) in maps.iter().zip(&heights) {
                let style = TextStyle::from(("sans-serif", 16).into_font()).color(&BLACK);
                root.draw(&Text::new(map.title.clone(), (8, y + 4), style))?;
                y += (TITLE + h + 8) as i32;
            }
            root.present()?;
        }
        let mut top = 8 + TITLE;
        for (map, &h) in maps.iter().zip(&heights) {
            for py in 0..h {
                let row = (py as usize * map.height) / h as usize;
                for px in 0..WIDTH {
                    let col = (px as usize * map.width) / WIDTH as usize;
                    let v = map.values.get(row * map.width + col).copied().unwrap_or(lo);
                    let t = if hi > lo {
                        ((v - lo) / (hi - lo)).clamp(0.0, 1.0)
                    } else {
                        0.0
                    };
                    let at = (((top + py) * size.0 + 8 + px) * 3) as usize;
                    rgb[at..at + 3].copy_from_slice(&viridis(t));
                }
            }
            top += h + TITLE + 8;
        }
        Ok(())
    })
}

/// Five stops of matplotlib's viridis, interpolated.
fn viridis(t: f32) -> [u8; 3] {
    const STOPS: [[f32; 3]; 5] = [
        [68.0, 1.0, 84.0],
        [59.0, 82.0, 139.0],
        [33.0, 145.0, 140.0],
        [94.0, 201.0, 98.0],
        [253.0, 231.0, 37.0],
    ];
    let x = t * (STOPS.len() - 1) as f32;
    let i = (x.floor() as usize).min(STOPS.len() - 2);
    let f = x - i as f32;
    std::array::from_fn(|c| (STOPS[i][c] + f * (STOPS[i + 1][c] - STOPS[i][c])) as u8)
}

/// plotters renders into memory and our `image` encodes the PNG: plotters' own encoder
/// would pull in a second version of the `image` crate.
fn render(
    path: &Path,
    (w, h): (u32, u32),
    paint: impl FnOnce(&mut [u8]) -> DrawResult,
) -> Result<()> {
    REGISTER.call_once(|| {
        let _ = register_font("sans-serif", FontStyle::Normal, FONT);
    });
    let mut rgb = vec![0u8; (w * h * 3) as usize];
    paint(&mut rgb)
        .map_err(|e| EmberError::Runtime(format!("plotting {}: {e}", path.display())))?;
    let mut png = Vec::new();
    image::RgbImage::from_raw(w, h, rgb)
        .expect("the buffer holds w x h RGB pixels")
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .map_err(|e| EmberError::Runtime(format!("encoding {}: {e}", path.display())))?;
    crate::atomic::write_atomic(path, &png)
}

fn draw_cells(
    rgb: &mut [u8],
    size: (u32, u32),
    grid: &Grid,
    (left, cw, ch): (u32, u32, u32),
) -> DrawResult {
    let root = BitMapBackend::with_buffer(rgb, size).into_drawing_area();
    root.fill(&WHITE)?;
    let text = |size: u32| TextStyle::from(("sans-serif", size).into_font()).color(&BLACK);
    root.draw(&Text::new(grid.title.clone(), (left as i32, 14), text(18)))?;
    let all = grid
        .values
        .iter()
        .flatten()
        .copied()
        .filter(|v| v.is_finite());
    let (lo, hi) = all.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
        (a.min(v), b.max(v))
    });
    let top = 48i32;
    for (r, (name, row)) in grid.rows.iter().zip(&grid.values).enumerate() {
        let y = top + (r as u32 * ch) as i32;
        root.draw(&Text::new(name.clone(), (8, y + 6), text(13)))?;
        for (c, v) in row.iter().enumerate() {
            let x = (left + c as u32 * cw) as i32;
            // White for the smallest value, deep blue for the largest.
            let t = if hi > lo { (v - lo) / (hi - lo) } else { 0.0 };
            let shade = |full: f64| (255.0 - t * (255.0 - full)) as u8;
            let fill = RGBColor(shade(31.0), shade(119.0), shade(180.0));
            root.draw(&Rectangle::new(
                [(x, y), (x + cw as i32 - 1, y + ch as i32 - 1)],
                fill.filled(),
            ))?;
            let label = if v.fract() == 0.0 {
                format!("{v:.0}")
            } else {
                format!("{v:.1}")
            };
            let colour = if t > 0.5 { WHITE } else { BLACK };
            let style = TextStyle::from(("sans-serif", 12).into_font()).color(&colour);
            root.draw(&Text::new(label, (x + 8, y + 6), style))?;
        }
    }
    let bottom = top + (grid.rows.len() as u32 * ch) as i32;
    // Column labels, thinned to every k-th when they would crowd.
    let every = (grid.columns.len() / 20).max(1);
    for (c, name) in grid
        .columns
        .iter()
        .enumerate()
        .filter(|(c, _)| c % every == 0)
    {
        let x = (left + c as u32 * cw) as i32;
        root.draw(&Text::new(name.clone(), (x + 8, bottom + 6), text(12)))?;
    }
    let x_label = grid.x_label.clone();
    root.draw(&Text::new(x_label, (left as i32, bottom + 28), text(13)))?;
    root.present()?;
    Ok(())
}

fn draw(rgb: &mut [u8], size: (u32, u32), panels: &[Panel], x_label: &str) -> DrawResult {
    let root = BitMapBackend::with_buffer(rgb, size).into_drawing_area();
    root.fill(&WHITE)?;
    let areas = root.split_evenly((1, panels.len().max(1)));
    for (panel, area) in panels.iter().zip(areas) {
        let x1 = points(panel).map(|p| p.0).fold(1f64, f64::max);
        plot_panel(&area, panel, x_label, 0.0..x1, false)?;
    }
    root.present()?;
    Ok(())
}

/// Draws one panel whose x axis is `x_label` over the data's own range, each series as
/// marked points joined by lines (accuracy against FLOPs, say), into a PNG at `path`
/// (written atomically).
pub fn draw_points(path: &Path, panel: &Panel, x_label: &str) -> Result<()> {
    let size = (640, 440);
    render(path, size, |rgb| {
        let root = BitMapBackend::with_buffer(rgb, size).into_drawing_area();
        root.fill(&WHITE)?;
        let (x0, x1) = points(panel).fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| {
            (a.min(p.0), b.max(p.0))
        });
        let (x0, x1) = if x0.is_finite() { (x0, x1) } else { (0.0, 1.0) };
        let pad = ((x1 - x0) * 0.05).max(1e-3);
        plot_panel(&root, panel, x_label, (x0 - pad)..(x1 + pad), true)?;
        root.present()?;
        Ok(())
    })
}

fn points(panel: &Panel) -> impl Iterator<Item = &(f64, f64)> {
    panel.series.iter().flat_map(|s| s.points.iter())
}

type Area<'a> = DrawingArea<BitMapBackend<'a>, plotters::coord::Shift>;

fn plot_panel(
    area: &Area,
    panel: &Panel,
    x_label: &str,
    x: std::ops::Range<f64>,
    markers: bool,
) -> DrawResult {
    let (mut y0, mut y1) = (f64::INFINITY, f64::NEG_INFINITY);
    for &(_, y) in points(panel) {
        if y.is_finite() {
            y0 = y0.min(y);
            y1 = y1.max(y);
        }
    }
    if !y0.is_finite() {
        (y0, y1) = (0.0, 1.0);
    }
    let pad = ((y1 - y0) * 0.05).max(1e-3);
    let mut chart = ChartBuilder::on(area)
        .caption(&panel.title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d(x, (y0 - pad)..(y1 + pad))?;
    chart
        .configure_mesh()
        .x_desc(x_label)
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
        if markers {
            chart.draw_series(s.points.iter().map(|&p| Circle::new(p, 4, colour.filled())))?;
        }
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font(("sans-serif", 13))
        .draw()?;
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

    #[test]
    fn draws_points_against_any_x() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("points.png");
        let panel = Panel {
            title: "top-1 vs MMACs".into(),
            y_label: "top-1 %".into(),
            series: vec![Series {
                name: "family".into(),
                points: vec![(0.3, 88.0), (0.6, 89.5), (1.2, 90.1)],
            }],
        };
        draw_points(&path, &panel, "MMACs").unwrap();
        assert!(std::fs::read(&path).unwrap().starts_with(b"\x89PNG"));
    }

    #[test]
    fn draws_a_grid() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("grid.png");
        let grid = Grid {
            title: "branches per layer".into(),
            x_label: "epoch".into(),
            rows: vec!["conv1".into(), "layer1.0.conv1".into()],
            columns: (1..=4).map(|e| e.to_string()).collect(),
            values: vec![vec![1.0, 7.0, 7.0, 13.0], vec![1.0, 1.0, 3.0, 3.0]],
        };
        draw_grid(&path, &grid).unwrap();
        assert!(std::fs::read(&path).unwrap().starts_with(b"\x89PNG"));
    }
}
