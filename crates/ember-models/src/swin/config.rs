//! The Swin config: the official `SwinTransformer(...)` constructor arguments (GreenMIM's and
//! SimMIM's alike), so their configs read as they are, and the per-stage geometry they imply.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The (square) input side the model is built for: it fixes every stage's resolution,
    /// hence which stages clamp their window.
    pub img_size: usize,
    pub patch_size: usize,
    pub in_chans: usize,
    /// 0 for an encoder without a classifier (GreenMIM's and SimMIM's).
    #[serde(default)]
    pub num_classes: usize,
    pub embed_dim: usize,
    pub depths: Vec<usize>,
    pub num_heads: Vec<usize>,
    pub window_size: usize,
    #[serde(default = "four")]
    pub mlp_ratio: f64,
    #[serde(default = "yes")]
    pub qkv_bias: bool,
    /// Every LayerNorm's eps: GreenMIM's factory passes 1e-6; Swin's and SimMIM's
    /// classifiers use PyTorch's 1e-5.
    #[serde(default = "torch_eps")]
    pub norm_eps: f64,
    #[serde(default)]
    pub drop_path_rate: f64,
}

fn four() -> f64 {
    4.0
}

fn yes() -> bool {
    true
}

fn torch_eps() -> f64 {
    1e-5
}

/// One stage's geometry: its token grid side, its (clamped) window and the shift of its odd
/// blocks (0 when the window covers the whole grid).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StageGeometry {
    pub resolution: usize,
    pub window: usize,
    pub shift: usize,
    pub dim: usize,
}

impl Config {
    fn imagenet(embed_dim: usize, depths: [usize; 4], heads: [usize; 4], window: usize) -> Self {
        Self {
            img_size: 224,
            patch_size: 4,
            in_chans: 3,
            num_classes: 1000,
            embed_dim,
            depths: depths.to_vec(),
            num_heads: heads.to_vec(),
            window_size: window,
            mlp_ratio: 4.0,
            qkv_bias: true,
            norm_eps: 1e-5,
            drop_path_rate: 0.1,
        }
    }

    /// Swin-T (`swin_tiny_patch4_window7_224`).
    pub fn tiny() -> Self {
        Self::imagenet(96, [2, 2, 6, 2], [3, 6, 12, 24], 7)
    }

    /// Swin-B (`swin_base_patch4_window7_224`), GreenMIM's main encoder.
    pub fn base() -> Self {
        Self {
            drop_path_rate: 0.5,
            ..Self::imagenet(128, [2, 2, 18, 2], [4, 8, 16, 32], 7)
        }
    }

    /// A three-stage Swin for 32 px images (Fashion-MNIST padded to 32): patch 2, windows of
    /// 4, grids 16 / 8 / 4; the mask unit is 8 px (4 x 4 units).
    pub fn nano_32() -> Self {
        Self {
            img_size: 32,
            patch_size: 2,
            in_chans: 1,
            num_classes: 10,
            embed_dim: 32,
            depths: vec![2, 2, 2],
            num_heads: vec![2, 4, 8],
            window_size: 4,
            mlp_ratio: 4.0,
            qkv_bias: true,
            norm_eps: 1e-5,
            drop_path_rate: 0.1,
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        let stages = self.depths.len();
        if stages == 0 || self.num_heads.len() != stages {
            return Err(format!(
                "depths and num_heads need one entry per stage (got {} and {})",
                stages,
                self.num_heads.len()
            ));
        }
        if self.patch_size == 0 || self.window_size == 0 || self.in_chans == 0 {
            return Err("patch_size, window_size and in_chans must be positive".into());
        }
        for (s, &heads) in self.num_heads.iter().enumerate() {
            let dim = self.dim(s);
            if heads == 0 || !dim.is_multiple_of(heads) {
                return Err(format!(
                    "stage {s}: {dim} channels do not split into {heads} heads"
                ));
            }
        }
        let unit = self.mask_unit();
        if self.img_size == 0 || !self.img_size.is_multiple_of(unit) {
            return Err(format!(
                "img_size {} must be a multiple of patch_size * 2^(stages - 1) = {unit}",
                self.img_size
            ));
        }
        Ok(())
    }

    /// Channels of stage `s`: `embed_dim * 2^s`.
    pub fn dim(&self, s: usize) -> usize {
        self.embed_dim << s
    }

    /// Channels of the last stage (the encoder's output).
    pub fn out_dim(&self) -> usize {
        self.dim(self.depths.len() - 1)
    }

    /// Pixels per side of a last-stage token: `patch_size * 2^(stages - 1)`, GreenMIM's mask
    /// unit.
    pub fn mask_unit(&self) -> usize {
        self.patch_size << (self.depths.len() - 1)
    }

    /// Per stage: grid side, window clamped to the grid, shift of odd blocks (the official
    /// `BasicLayer` rule: a grid no larger than the window uses the grid as its window and
    /// never shifts).
    pub fn stages(&self) -> Vec<StageGeometry> {
        let first = self.img_size / self.patch_size;
        (0..self.depths.len())
            .map(|s| {
                let resolution = first >> s;
                let (window, shift) = if resolution <= self.window_size {
                    (resolution, 0)
                } else {
                    (self.window_size, self.window_size / 2)
                };
                StageGeometry {
                    resolution,
                    window,
                    shift,
                    dim: self.dim(s),
                }
            })
            .collect()
    }

    /// Drop-path rate of every block, rising linearly from 0 to `drop_path_rate` over all
    /// blocks (Swin's rule).
    pub fn drop_path_rates(&self) -> Vec<f64> {
        let total: usize = self.depths.iter().sum();
        (0..total)
            .map(|i| {
                if total > 1 {
                    self.drop_path_rate * i as f64 / (total - 1) as f64
                } else {
                    0.0
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swin_b_clamps_only_its_last_stage() {
        let g = Config::base().stages();
        assert_eq!(
            g.iter()
                .map(|s| (s.resolution, s.window, s.shift))
                .collect::<Vec<_>>(),
            vec![(56, 7, 3), (28, 7, 3), (14, 7, 3), (7, 7, 0)]
        );
        assert_eq!(Config::base().mask_unit(), 32);
    }

    #[test]
    fn bad_configs_say_why() {
        let mut c = Config::nano_32();
        c.img_size = 28;
        assert!(c.validate().unwrap_err().contains("multiple of"));
        let mut c = Config::nano_32();
        c.num_heads = vec![3, 4, 8];
        assert!(c.validate().unwrap_err().contains("heads"));
        assert!(Config::nano_32().validate().is_ok());
    }
}
