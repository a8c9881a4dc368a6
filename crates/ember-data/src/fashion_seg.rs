//! FashionSeg: semantic segmentation made from real Fashion-MNIST items. Each sample is a
//! square canvas holding 1-4 items at random positions and sizes (later items occlude
//! earlier ones), with a class per pixel: background (0) or the class of the item whose
//! (resized) intensity there is above a threshold (1 + the Fashion-MNIST label). Every canvas
//! is a pure function of (seed, split, index); train canvases draw train-split items only,
//! test canvases test-split items only. Each item's box (where its pixels lie, occluded or
//! not) comes with it, so detection can use the same data.
//!
//! `--data fashion-seg[:key=value,...]`: `size` (canvas side, 64), `train` and `test`
//! (canvases per split, 20000 and 2000), `seed` (0), `items` (`MIN-MAX`, 1-4), `threshold`
//! (0.15), `scale` (`LO-HI`, item side over 28 px, 0.75-1.5).

use std::sync::Arc;

use ember_core::{EmberError, EmberRng, Result};

use crate::dataset::{Dataset, Split};
use crate::fashion::{self, FashionMnist};
use crate::sample::Chw;
use crate::transforms::resize_bilinear;

/// How canvases are drawn.
#[derive(Debug, Clone, PartialEq)]
pub struct CanvasSpec {
    pub size: usize,
    pub train: usize,
    pub test: usize,
    pub seed: u64,
    /// Items per canvas, inclusive.
    pub items: (usize, usize),
    /// An item's pixel belongs to it above this intensity (in [0, 1]).
    pub threshold: f32,
    /// Item side as a multiple of 28 px, uniform in this range.
    pub scale: (f64, f64),
}

impl Default for CanvasSpec {
    fn default() -> Self {
        Self {
            size: 64,
            train: 20_000,
            test: 2_000,
            seed: 0,
            items: (1, 4),
            threshold: 0.15,
            scale: (0.75, 1.5),
        }
    }
}

const ITEM_SIDE: usize = 28;

impl CanvasSpec {
    /// `key=value` pairs separated by commas (the part after `fashion-seg:`).
    pub fn parse(options: &str) -> Result<Self> {
        let mut spec = Self::default();
        let bad = |msg: String| EmberError::bad_input(format!("--data fashion-seg: {msg}"));
        for pair in options.split(',').filter(|p| !p.is_empty()) {
            let (key, value) = pair
                .split_once('=')
                .ok_or_else(|| bad(format!("`{pair}` is not key=value")))?;
            let number = |v: &str| -> Result<f64> {
                v.parse::<f64>()
                    .map_err(|_| bad(format!("{key}={value}: not a number")))
            };
            let range = || -> Result<(f64, f64)> {
                let (lo, hi) = value
                    .split_once('-')
                    .ok_or_else(|| bad(format!("{key}={value}: expected LO-HI")))?;
                Ok((number(lo)?, number(hi)?))
            };
            let count = |v: f64| -> Result<usize> {
                if v >= 0.0 && v.fract() == 0.0 {
                    Ok(v as usize)
                } else {
                    Err(bad(format!("{key}={value}: expected a whole number")))
                }
            };
            match key {
                "size" => spec.size = count(number(value)?)?,
                "train" => spec.train = count(number(value)?)?,
                "test" => spec.test = count(number(value)?)?,
                "seed" => spec.seed = count(number(value)?)? as u64,
                "threshold" => spec.threshold = number(value)? as f32,
                "items" => {
                    let (lo, hi) = range()?;
                    spec.items = (count(lo)?, count(hi)?);
                }
                "scale" => spec.scale = range()?,
                other => {
                    return Err(bad(format!(
                        "unknown option `{other}` (known: size, train, test, seed, items, threshold, scale)"
                    )))
                }
            }
        }
        spec.validate().map_err(bad)?;
        Ok(spec)
    }

    fn validate(&self) -> std::result::Result<(), String> {
        let largest = (self.scale.1 * ITEM_SIDE as f64).round() as usize;
        if self.items.0 == 0 || self.items.0 > self.items.1 {
            return Err(format!(
                "items {}-{} is not a range of at least one",
                self.items.0, self.items.1
            ));
        }
        if !(self.scale.0 > 0.0 && self.scale.0 <= self.scale.1) {
            return Err(format!(
                "scale {}-{} is not a positive range",
                self.scale.0, self.scale.1
            ));
        }
        if largest > self.size {
            return Err(format!(
                "items up to {largest} px (scale {}) do not fit a {} px canvas",
                self.scale.1, self.size
            ));
        }
        if !(0.0..1.0).contains(&self.threshold) {
            return Err(format!("threshold {} is not in [0, 1)", self.threshold));
        }
        if self.train == 0 || self.test == 0 {
            return Err("train and test need at least one canvas each".into());
        }
        Ok(())
    }

    pub fn len(&self, split: Split) -> usize {
        match split {
            Split::Train => self.train,
            Split::Test => self.test,
        }
    }
}

/// Where one item lies on its canvas (pixels `x0..x1`, `y0..y1`) and its class (the
/// segmentation label, so background is 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ItemBox {
    pub class: u32,
    pub x0: usize,
    pub y0: usize,
    pub x1: usize,
    pub y1: usize,
}

/// One sample: the grey image, the class of each pixel (row-major) and the items' boxes.
#[derive(Debug, Clone, PartialEq)]
pub struct Canvas {
    pub image: Chw,
    pub labels: Vec<u32>,
    pub boxes: Vec<ItemBox>,
}

pub struct FashionSeg {
    items: Arc<FashionMnist>,
    spec: CanvasSpec,
    split: Split,
    classes: Vec<String>,
}

/// The class names: background, then Fashion-MNIST's.
pub fn classes() -> Vec<String> {
    std::iter::once("background")
        .chain(fashion::CLASSES)
        .map(String::from)
        .collect()
}

impl FashionSeg {
    /// Canvases of `split` from the items of the same split of `items`.
    pub fn new(items: Arc<FashionMnist>, split: Split, spec: CanvasSpec) -> Self {
        Self {
            items,
            spec,
            split,
            classes: classes(),
        }
    }

    pub fn spec(&self) -> &CanvasSpec {
        &self.spec
    }

    /// Canvas `index`, drawn from (seed, split, index) alone.
    pub fn canvas(&self, index: usize) -> Canvas {
        let s = &self.spec;
        let mut rng = EmberRng::for_name(
            s.seed,
            &format!("fashion-seg/{}/{index}", self.split.name()),
        );
        let mut image = Chw::zeros(1, s.size, s.size);
        let mut labels = vec![0u32; s.size * s.size];
        let mut boxes = Vec::new();
        let count = s.items.0 + rng.below(s.items.1 - s.items.0 + 1);
        for _ in 0..count {
            let item = rng.below(self.items.len());
            let side = ((rng.uniform(s.scale.0, s.scale.1) * ITEM_SIDE as f64).round() as usize)
                .clamp(1, s.size);
            let (x0, y0) = (rng.below(s.size - side + 1), rng.below(s.size - side + 1));
            let flip = rng.bernoulli(0.5);
            let raw = Chw::from_u8(1, ITEM_SIDE, ITEM_SIDE, self.items.image_bytes(item));
            let pixels = resize_bilinear(&raw, side, side);
            let class = self.items.labels()[item] + 1;
            let mut extent: Option<(usize, usize, usize, usize)> = None;
            for y in 0..side {
                for x in 0..side {
                    let sx = if flip { side - 1 - x } else { x };
                    let v = pixels.data[y * side + sx];
                    let at = (y0 + y) * s.size + x0 + x;
                    if v > s.threshold {
                        // The item's own pixels cover whatever lay there.
                        image.data[at] = v;
                        labels[at] = class;
                        let e = extent.get_or_insert((x, y, x, y));
                        *e = (e.0.min(x), e.1.min(y), e.2.max(x), e.3.max(y));
                    } else {
                        // Its faint edge blends in without hiding what lies beneath.
                        image.data[at] = image.data[at].max(v);
                    }
                }
            }
            if let Some((bx0, by0, bx1, by1)) = extent {
                boxes.push(ItemBox {
                    class,
                    x0: x0 + bx0,
                    y0: y0 + by0,
                    x1: x0 + bx1 + 1,
                    y1: y0 + by1 + 1,
                });
            }
        }
        Canvas {
            image,
            labels,
            boxes,
        }
    }
}

impl Dataset for FashionSeg {
    fn len(&self) -> usize {
        self.spec.len(self.split)
    }

    fn get(&self, index: usize) -> Result<(Chw, u32)> {
        let (image, label, _) = self.get_dense(index)?;
        Ok((image, label))
    }

    fn dense(&self) -> bool {
        true
    }

    /// The canvas, its pixel classes and, as the image-level label, the class covering most
    /// pixels (background when no item shows).
    fn get_dense(&self, index: usize) -> Result<(Chw, u32, Vec<u32>)> {
        let c = self.canvas(index);
        let mut area = vec![0usize; self.classes.len()];
        for &l in &c.labels {
            area[l as usize] += 1;
        }
        let main = (1..area.len()).max_by_key(|&k| (area[k], std::cmp::Reverse(k)));
        let label = main.filter(|&k| area[k] > 0).unwrap_or(0) as u32;
        Ok((c.image, label, c.labels))
    }

    fn classes(&self) -> &[String] {
        &self.classes
    }

    fn image_dims(&self) -> [usize; 3] {
        [1, self.spec.size, self.spec.size]
    }

    fn source(&self) -> String {
        let s = &self.spec;
        format!(
            "FashionSeg {} ({} canvases of {}x{} px, {}-{} items, seed {}) from {}",
            self.split.name(),
            self.len(),
            s.size,
            s.size,
            s.items.0,
            s.items.1,
            s.seed,
            self.items.source()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fashion::Source;

    fn data(split: Split, spec: CanvasSpec) -> FashionSeg {
        let items = FashionMnist::from_source(Source::Bundled, split).unwrap();
        FashionSeg::new(Arc::new(items), split, spec)
    }

    #[test]
    fn canvases_are_deterministic_and_labels_match_pixels() {
        let spec = CanvasSpec {
            train: 10,
            test: 10,
            ..CanvasSpec::default()
        };
        let a = data(Split::Train, spec.clone());
        let b = data(Split::Train, spec.clone());
        for i in 0..10 {
            let (x, y) = (a.canvas(i), b.canvas(i));
            assert_eq!(x, y);
            assert!((1..=4).contains(&x.boxes.len()));
            for (v, &l) in x.image.data.iter().zip(&x.labels) {
                // A labelled pixel is bright; background may hold a faint edge only.
                assert!(if l > 0 {
                    *v > spec.threshold
                } else {
                    *v <= spec.threshold
                });
            }
            for bx in &x.boxes {
                assert!(bx.x0 < bx.x1 && bx.x1 <= 64 && bx.y0 < bx.y1 && bx.y1 <= 64);
                assert!((1..=10).contains(&bx.class));
            }
        }
        assert_ne!(a.canvas(0), a.canvas(1));
        let other_seed = data(
            Split::Train,
            CanvasSpec {
                seed: 1,
                ..spec.clone()
            },
        );
        assert_ne!(a.canvas(0), other_seed.canvas(0));
        let test = data(Split::Test, spec);
        assert_ne!(a.canvas(0), test.canvas(0));
    }

    #[test]
    fn options_parse_and_bad_ones_are_refused() {
        let s = CanvasSpec::parse("size=96,train=100,items=2-3,scale=1-2,seed=4").unwrap();
        assert_eq!(
            (s.size, s.train, s.items, s.scale, s.seed),
            (96, 100, (2, 3), (1.0, 2.0), 4)
        );
        for bad in [
            "size=32",
            "items=3-1",
            "foo=1",
            "train",
            "threshold=2",
            "train=-1",
        ] {
            let e = CanvasSpec::parse(bad).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{bad}");
        }
    }
}
