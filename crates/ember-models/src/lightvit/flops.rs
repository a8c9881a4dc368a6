//! LightViT's multiply-accumulates, derived from the config. Two counts:
//!
//! - `official`: the official `LightViT.flops()` plus its hook counter for the stem (convs
//!   only). These are the paper's numbers (0.7/1.7/3.9 G for T/S/B at 224 px). That method
//!   charges the local window attention `H*W*C*2` per block instead of `H*W*ws^2*C*2`, and
//!   its head always has 1000 classes.
//! - `window_attention_included`: the same count with the window attention's true cost and
//!   the config's class count (about 4% more for T/S/B).
//!
//! Neither counts softmax, norms, activations or the element-wise gates.

use super::Config;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Flops {
    pub official: f64,
    pub window_attention_included: f64,
}

/// MACs of the stem's convs for an `h x w` input (bias-free count, as the official hook).
fn stem(cfg: &Config, h: usize, w: usize) -> f64 {
    let sd = cfg.embed_dims[0] / 2;
    let (mut oh, mut ow) = (h, w);
    let mut macs = 0.0;
    for (i, s) in cfg.stem_strides().into_iter().enumerate() {
        (oh, ow) = ((oh + 2 - 3) / s + 1, (ow + 2 - 3) / s + 1);
        let (cin_per_group, cout) = match i {
            0 => (cfg.in_chans, sd),
            4 => (sd, cfg.embed_dims[0]),
            _ => (1, sd),
        };
        macs += (cout * 9 * cin_per_group * oh * ow) as f64;
    }
    macs
}

pub fn count(cfg: &Config, h: usize, w: usize) -> Flops {
    let nt = cfg.num_tokens as f64;
    let ws = cfg.window_size;
    let (mut gh, mut gw) = (h / cfg.patch_size, w / cfg.patch_size);
    let mut shared = stem(cfg, h, w);
    let (mut window_official, mut window_true) = (0.0, 0.0);
    for s in 0..cfg.stages() {
        let c = cfg.embed_dims[s] as f64;
        if s > 0 {
            let prev = cfg.embed_dims[s - 1] as f64;
            let merged = ((gh / 2) * (gw / 2)) as f64;
            shared += merged * prev * 4.0 * c + merged * prev * c + nt * prev * c;
            (gh, gw) = (gh / 2, gw / 2);
        }
        let hw = (gh * gw) as f64;
        let n = hw + nt;
        let windows = ((gh / ws) * (gw / ws) * ws * ws) as f64;
        let per_block = n * c * c * 3.0 // qkv
            + hw * nt * c * 2.0 * 2.0 // global aggregation and broadcast
            + n * c * c // proj
            + n * c * c * cfg.mlp_ratios[s] * 2.0 // fc1, fc2
            + c * c * 0.25 * 2.0 // channel attention
            + n * c * c * 0.25 + n * c * 0.25 * 2.0 // spatial attention
            + n * c; // the gate product
        let blocks = cfg.num_layers[s] as f64;
        shared += blocks * per_block;
        window_official += blocks * windows * c * 2.0;
        window_true += blocks * windows * (ws * ws) as f64 * c * 2.0;
    }
    let last = *cfg.embed_dims.last().unwrap() as f64;
    let n = (gh * gw) as f64 + nt;
    shared += n * last * cfg.neck_dim as f64;
    let neck = cfg.neck_dim as f64;
    Flops {
        official: shared + window_official + neck * 1000.0,
        window_attention_included: shared + window_true + neck * cfg.num_classes as f64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The spec's figures (official counter: 0.733/1.743/3.923 G; corrected:
    /// 0.765/1.790/4.005 G), to the three decimals it gives.
    #[test]
    fn tiny_small_base_match_the_official_counter() {
        for (cfg, official, full) in [
            (Config::tiny(), 0.733, 0.765),
            (Config::small(), 1.743, 1.790),
            (Config::base(), 3.923, 4.005),
        ] {
            let f = count(&cfg, 224, 224);
            let g = |x: f64| (x / 1e9 * 1000.0).round() / 1000.0;
            assert_eq!(g(f.official), official, "{cfg:?}");
            assert_eq!(g(f.window_attention_included), full, "{cfg:?}");
        }
    }
}
