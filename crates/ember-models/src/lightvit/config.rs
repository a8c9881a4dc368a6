//! The LightViT config: the official `LightViT(...)` constructor arguments, so a config from
//! the official code (or a parity manifest) reads as it is.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Stored by the official constructor and never used; kept so its configs read as they are.
    #[serde(default = "default_img_size")]
    pub img_size: usize,
    /// Total stride of the stem: 8 (official: stride 2 in the first conv, the last depthwise
    /// conv and the projection), or 4 or 2 for small images (Ember's extension: the last
    /// depthwise conv, then the first conv, run at stride 1 instead). The official code
    /// only reads it for its FLOPs count.
    #[serde(default = "default_patch_size")]
    pub patch_size: usize,
    pub in_chans: usize,
    pub num_classes: usize,
    pub embed_dims: Vec<usize>,
    pub num_layers: Vec<usize>,
    pub num_heads: Vec<usize>,
    pub mlp_ratios: Vec<f64>,
    pub num_tokens: usize,
    pub window_size: usize,
    pub neck_dim: usize,
    #[serde(default = "yes")]
    pub qkv_bias: bool,
    #[serde(default)]
    pub drop_rate: f64,
    #[serde(default)]
    pub attn_drop_rate: f64,
    #[serde(default)]
    pub drop_path_rate: f64,
}

fn default_img_size() -> usize {
    224
}

fn default_patch_size() -> usize {
    8
}

fn yes() -> bool {
    true
}

impl Config {
    fn imagenet(dims: [usize; 3], layers: [usize; 3], heads: [usize; 3], tokens: usize) -> Self {
        Self {
            img_size: 224,
            patch_size: 8,
            in_chans: 3,
            num_classes: 1000,
            embed_dims: dims.to_vec(),
            num_layers: layers.to_vec(),
            num_heads: heads.to_vec(),
            mlp_ratios: vec![8.0, 4.0, 4.0],
            num_tokens: tokens,
            window_size: 7,
            neck_dim: 1280,
            qkv_bias: true,
            drop_rate: 0.0,
            attn_drop_rate: 0.0,
            drop_path_rate: 0.0,
        }
    }

    /// LightViT-T (`lightvit_tiny`): 9.4M parameters, 0.7 GFLOPs at 224 px.
    pub fn tiny() -> Self {
        Self::imagenet([64, 128, 256], [2, 6, 6], [2, 4, 8], 8)
    }

    /// LightViT-S (`lightvit_small`): 19.2M parameters, 1.7 GFLOPs.
    pub fn small() -> Self {
        Self::imagenet([96, 192, 384], [2, 6, 6], [3, 6, 12], 16)
    }

    /// LightViT-B (`lightvit_base`): 35.2M parameters, 3.9 GFLOPs.
    pub fn base() -> Self {
        Self::imagenet([128, 256, 512], [3, 8, 6], [4, 8, 16], 24)
    }

    /// LightViT-T's widths, depths and heads for 32 px images (Fashion-MNIST padded or
    /// resized to 32): stem stride 4 and 2x2 windows give 8x8, 4x4 and 2x2 token grids;
    /// 4 global tokens and a 512-wide neck.
    pub fn tiny_32() -> Self {
        Self {
            img_size: 32,
            patch_size: 4,
            in_chans: 1,
            num_classes: 10,
            num_tokens: 4,
            window_size: 2,
            neck_dim: 512,
            ..Self::tiny()
        }
    }

    /// Half of LightViT-T's widths (32-64-128, heads of 32 channels as in T/S/B) for 32 px
    /// images, with a 256-wide neck: 2.0M parameters, 0.02 GMACs. The Fashion-MNIST
    /// recipe's model.
    pub fn nano_32() -> Self {
        Self {
            embed_dims: vec![32, 64, 128],
            num_heads: vec![1, 2, 4],
            neck_dim: 256,
            ..Self::tiny_32()
        }
    }

    /// LightViT-T's widths, depths and heads for 64 px images: the official stem (stride 8)
    /// and 2x2 windows give 8x8, 4x4 and 2x2 grids.
    pub fn tiny_64() -> Self {
        Self {
            img_size: 64,
            patch_size: 8,
            ..Self::tiny_32()
        }
    }

    pub fn stages(&self) -> usize {
        self.embed_dims.len()
    }

    /// Strides of the stem's four convs and its projection.
    pub fn stem_strides(&self) -> [usize; 5] {
        match self.patch_size {
            2 => [1, 1, 1, 1, 2],
            4 => [2, 1, 1, 1, 2],
            _ => [2, 1, 1, 2, 2],
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        let n = self.stages();
        if n == 0 {
            return Err("embed_dims is empty".into());
        }
        for (name, len) in [
            ("num_layers", self.num_layers.len()),
            ("num_heads", self.num_heads.len()),
            ("mlp_ratios", self.mlp_ratios.len()),
        ] {
            if len != n {
                return Err(format!("{name} has {len} entries, embed_dims {n}"));
            }
        }
        if ![2, 4, 8].contains(&self.patch_size) {
            return Err(format!(
                "patch_size must be 2, 4 or 8, got {}",
                self.patch_size
            ));
        }
        if self.embed_dims[0] < 2 || !self.embed_dims[0].is_multiple_of(2) {
            return Err("embed_dims[0] must be even (the stem is half as wide)".into());
        }
        for (i, (&c, &h)) in self.embed_dims.iter().zip(&self.num_heads).enumerate() {
            if h == 0 || c % h != 0 {
                return Err(format!(
                    "stage {i}: {c} channels do not split into {h} heads"
                ));
            }
            if c < 4 {
                return Err(format!(
                    "stage {i}: width {c} is under 4 (BiAttn reduces by 4)"
                ));
            }
        }
        if self.mlp_ratios.iter().any(|r| r.is_nan() || *r <= 0.0) {
            return Err("mlp_ratios must be positive".into());
        }
        if self.num_tokens == 0 || self.window_size == 0 || self.neck_dim == 0 {
            return Err("num_tokens, window_size and neck_dim must be at least 1".into());
        }
        for (name, p) in [
            ("drop_rate", self.drop_rate),
            ("attn_drop_rate", self.attn_drop_rate),
            ("drop_path_rate", self.drop_path_rate),
        ] {
            if !(0.0..1.0).contains(&p) {
                return Err(format!("{name} must be in [0, 1), got {p}"));
            }
        }
        Ok(())
    }

    /// The token grid of every stage for an `h x w` input, or why the input does not fit:
    /// the model has no padding, so each grid must split into whole windows and be even
    /// before each merge.
    pub fn grids(&self, h: usize, w: usize) -> Result<Vec<(usize, usize)>, String> {
        let conv = |n: usize, s: usize| (n + 2 - 3) / s + 1;
        let (mut gh, mut gw) = (h, w);
        for s in self.stem_strides() {
            if gh + 2 < 3 || gw + 2 < 3 {
                return Err(format!("input {h}x{w} is too small"));
            }
            (gh, gw) = (conv(gh, s), conv(gw, s));
        }
        let ws = self.window_size;
        let mut grids = Vec::new();
        for stage in 0..self.stages() {
            if stage > 0 {
                if gh % 2 != 0 || gw % 2 != 0 {
                    return Err(format!(
                        "input {h}x{w} gives an odd {gh}x{gw} token grid before stage {stage}'s merge"
                    ));
                }
                (gh, gw) = (gh / 2, gw / 2);
            }
            if gh % ws != 0 || gw % ws != 0 {
                return Err(format!(
                    "input {h}x{w} gives a {gh}x{gw} token grid in stage {stage}, which does not split into {ws}x{ws} windows (LightViT has no padding; for window_size {ws} and patch_size {} use sides that are multiples of {})",
                    self.patch_size,
                    (self.patch_size * ws) << (self.stages() - 1)
                ));
            }
            grids.push((gh, gw));
        }
        Ok(grids)
    }

    /// Drop-path rate of every block: `linspace(0, drop_path_rate, total blocks)`.
    pub fn drop_path_rates(&self) -> Vec<f64> {
        let total: usize = self.num_layers.iter().sum();
        (0..total)
            .map(|k| match total {
                1 => 0.0,
                _ => self.drop_path_rate * k as f64 / (total - 1) as f64,
            })
            .collect()
    }
}
