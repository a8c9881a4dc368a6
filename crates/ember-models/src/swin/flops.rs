//! Multiply-accumulates of the dense Swin, counted as the official `SwinTransformer.flops()`
//! does (the count behind the paper's 4.5 G for Swin-T): LayerNorms at one MAC per element,
//! window attention at `ws^2` keys per query, the classifier included.

use super::config::Config;

/// MACs of one image at the config's `img_size`.
pub fn macs(cfg: &Config) -> f64 {
    let r0 = (cfg.img_size / cfg.patch_size) as f64;
    let p2 = (cfg.patch_size * cfg.patch_size) as f64;
    let c0 = cfg.embed_dim as f64;
    let mut total = r0 * r0 * c0 * cfg.in_chans as f64 * p2 + r0 * r0 * c0;
    let stages = cfg.stages();
    for (s, g) in stages.iter().enumerate() {
        let (n, c) = ((g.resolution * g.resolution) as f64, g.dim as f64);
        let keys = (g.window * g.window) as f64;
        let per_block = 2.0 * n * c // two LayerNorms
            + n * c * 3.0 * c // qkv
            + 2.0 * n * keys * c // q k^T and attention times v
            + n * c * c // proj
            + 2.0 * n * c * c * cfg.mlp_ratio; // fc1, fc2
        total += per_block * cfg.depths[s] as f64;
        if s + 1 < stages.len() {
            total += n * c + (n / 4.0) * 4.0 * c * 2.0 * c;
        }
    }
    let last = stages.last().expect("validated configs have a stage");
    let out = cfg.out_dim() as f64;
    total + out * (last.resolution * last.resolution) as f64 + out * cfg.num_classes as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swin_t_and_b_match_the_official_counts() {
        // Official flops(): Swin-T 4.49 G, Swin-B 15.44 G at 224 px.
        assert!(
            (macs(&Config::tiny()) / 1e9 - 4.49).abs() < 0.01,
            "{}",
            macs(&Config::tiny())
        );
        assert!(
            (macs(&Config::base()) / 1e9 - 15.44).abs() < 0.01,
            "{}",
            macs(&Config::base())
        );
    }
}
