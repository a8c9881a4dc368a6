//! Mixup (Zhang et al. 2018) and CutMix (Yun et al. 2019) on a batch, as timm's `Mixup` in
//! batch mode: one `lam ~ Beta(alpha, alpha)` per batch, each image mixed with the batch
//! reversed (`x.flip(0)`), CutMix's `lam` corrected to the pasted box's true area, and soft
//! targets `lam * smooth(y) + (1 - lam) * smooth(y.flip(0))`.

use ember_core::EmberRng;
use ember_data::Batch;

/// Why mixing is refused on segmentation data.
pub const NOT_ON_DENSE: &str =
    "--mixup and --cutmix mix image-level labels; segmentation data has a label per pixel";

#[derive(Debug, Clone, PartialEq)]
pub struct MixConfig {
    pub mixup_alpha: f64,
    pub cutmix_alpha: f64,
    /// Probability of CutMix rather than mixup when both are on.
    pub switch_prob: f64,
    pub label_smoothing: f64,
}

impl MixConfig {
    pub fn enabled(&self) -> bool {
        self.mixup_alpha > 0.0 || self.cutmix_alpha > 0.0
    }
}

/// Label-smoothed one-hot rows: `1 - e + e/k` on the class, `e/k` elsewhere.
pub fn smooth_one_hot(labels: &[u32], classes: usize, smoothing: f64) -> Vec<f32> {
    let off = (smoothing / classes as f64) as f32;
    let on = (1.0 - smoothing) as f32 + off;
    let mut out = vec![off; labels.len() * classes];
    for (i, &y) in labels.iter().enumerate() {
        out[i * classes + y as usize] = on;
    }
    out
}

/// Mixes `batch` in place and returns its soft targets `[n, classes]`.
pub fn mix_batch(
    batch: &mut Batch,
    classes: usize,
    cfg: &MixConfig,
    rng: &mut EmberRng,
) -> Vec<f32> {
    let [n, c, h, w] = batch.dims;
    let use_cutmix =
        cfg.cutmix_alpha > 0.0 && (cfg.mixup_alpha <= 0.0 || rng.bernoulli(cfg.switch_prob));
    let alpha = if use_cutmix {
        cfg.cutmix_alpha
    } else {
        cfg.mixup_alpha
    };
    let mut lam = rng.beta(alpha, alpha);
    let original = batch.images.clone();
    let item = c * h * w;
    if use_cutmix {
        // A box of area (1 - lam) h w centred anywhere, clipped to the image.
        let cut = (1.0 - lam).sqrt();
        let (ch, cw) = ((h as f64 * cut) as usize, (w as f64 * cut) as usize);
        let (cy, cx) = (rng.below(h), rng.below(w));
        let (y0, y1) = (cy.saturating_sub(ch / 2), (cy + ch / 2).min(h));
        let (x0, x1) = (cx.saturating_sub(cw / 2), (cx + cw / 2).min(w));
        for i in 0..n {
            let j = n - 1 - i;
            for ci in 0..c {
                for y in y0..y1 {
                    let row = ci * h * w + y * w;
                    batch.images[i * item + row + x0..i * item + row + x1]
                        .copy_from_slice(&original[j * item + row + x0..j * item + row + x1]);
                }
            }
        }
        lam = 1.0 - ((y1 - y0) * (x1 - x0)) as f64 / (h * w) as f64;
    } else {
        let (a, b) = (lam as f32, (1.0 - lam) as f32);
        for i in 0..n {
            let j = n - 1 - i;
            for k in 0..item {
                batch.images[i * item + k] =
                    a * original[i * item + k] + b * original[j * item + k];
            }
        }
    }
    let own = smooth_one_hot(&batch.labels, classes, cfg.label_smoothing);
    let flipped: Vec<u32> = batch.labels.iter().rev().copied().collect();
    let other = smooth_one_hot(&flipped, classes, cfg.label_smoothing);
    own.iter()
        .zip(&other)
        .map(|(&a, &b)| lam as f32 * a + (1.0 - lam) as f32 * b)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch() -> Batch {
        Batch {
            images: vec![0.0; 16].into_iter().chain(vec![1.0; 16]).collect(),
            dims: [2, 1, 4, 4],
            labels: vec![0, 1],
            maps: Vec::new(),
            indices: vec![0, 1],
            more_views: Vec::new(),
            augment_seconds: 0.0,
        }
    }

    #[test]
    fn mixup_targets_match_the_pixel_mix() {
        let cfg = MixConfig {
            mixup_alpha: 0.8,
            cutmix_alpha: 0.0,
            switch_prob: 0.5,
            label_smoothing: 0.0,
        };
        let mut b = batch();
        let t = mix_batch(&mut b, 2, &cfg, &mut EmberRng::new(3));
        // image 0 = lam * 0 + (1 - lam) * 1, its target = [lam, 1 - lam]
        assert!((b.images[0] - t[1]).abs() < 1e-6);
        assert!((t[0] + t[1] - 1.0).abs() < 1e-6);
    }

    #[test]
    fn cutmix_lam_is_the_unpasted_area() {
        let cfg = MixConfig {
            mixup_alpha: 0.0,
            cutmix_alpha: 1.0,
            switch_prob: 0.5,
            label_smoothing: 0.0,
        };
        for seed in 0..20 {
            let mut b = batch();
            let t = mix_batch(&mut b, 2, &cfg, &mut EmberRng::new(seed));
            let pasted = b.images[..16].iter().filter(|&&v| v == 1.0).count() as f32 / 16.0;
            assert!(
                (t[1] - pasted).abs() < 1e-6,
                "seed {seed}: {} vs {pasted}",
                t[1]
            );
        }
    }

    #[test]
    fn smoothing_spreads_mass() {
        assert_eq!(smooth_one_hot(&[1], 4, 0.2), vec![0.05, 0.85, 0.05, 0.05]);
    }
}
