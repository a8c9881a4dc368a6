//! LightViT (Huang et al., "LightViT: Towards Light-Weight Convolution-Free Vision
//! Transformers", arXiv 2207.05557), as the official classification code has it
//! (hunto/image_classification_sota `lib/models/lightvit.py`), with its state_dict names:
//!
//! - `patch_embed`: a convolutional stem (stride 8) and a LayerNorm -> image tokens;
//! - `global_token`: learnt tokens prepended to the image tokens (no position embedding);
//! - `stages.S`: for S > 0 a `ResidualMergePatch` at index 0, then `Block`s: local window
//!   attention with relative position bias, global aggregation and broadcast, and an FFN
//!   gated by bi-dimensional (channel and spatial) attention;
//! - `norm`, then `neck` (Linear, LayerNorm, GELU) per token, the mean over all tokens
//!   (global ones included) and `head`.
//!
//! LayerNorm eps is 1e-6 for the blocks and the final norm and 1e-5 everywhere else; GELU
//! is the exact (erf) one. Initialisation as the official `_init_vit_weights`: Linears and
//! the global tokens and bias tables ~ N(0, 0.02) with zero biases, norms 1/0, convs
//! PyTorch's default. `relative_position_index` is recomputed, not stored.

mod attention;
mod block;
mod config;
pub mod flops;
mod merge;
mod stem;

use candle_core::{Module, Result, Tensor};
use candle_nn::{Init, VarBuilder};

use self::attention::AttentionConfig;
use self::block::{Block, BlockConfig};
use self::merge::MergePatch;
use self::stem::ConvStem;
use crate::layers::{linear_normal, LayerNorm, Linear, Noise};
use crate::taps::Taps;
pub use config::Config;

struct Stage {
    merge: Option<MergePatch>,
    blocks: Vec<Block>,
}

pub struct LightViT {
    cfg: Config,
    patch_embed: ConvStem,
    global_token: Tensor,
    stages: Vec<Stage>,
    norm: LayerNorm,
    neck_fc: Linear,
    neck_norm: LayerNorm,
    head: Option<Linear>,
    noise: Noise,
}

impl LightViT {
    pub fn new(cfg: &Config, vb: VarBuilder) -> Result<Self> {
        let noise = Noise::default();
        let dpr = cfg.drop_path_rates();
        let mut stages = Vec::new();
        let mut k = 0;
        for s in 0..cfg.stages() {
            let vs = vb.pp("stages").pp(s);
            let dim = cfg.embed_dims[s];
            let merge = match s {
                0 => None,
                _ => Some(MergePatch::new(
                    cfg.embed_dims[s - 1],
                    dim,
                    cfg.num_tokens,
                    vs.pp(0),
                )?),
            };
            let first = usize::from(s > 0);
            let mut blocks = Vec::new();
            for i in 0..cfg.num_layers[s] {
                let block = BlockConfig {
                    attention: AttentionConfig {
                        dim,
                        heads: cfg.num_heads[s],
                        tokens: cfg.num_tokens,
                        window: cfg.window_size,
                        qkv_bias: cfg.qkv_bias,
                        attn_drop: cfg.attn_drop_rate,
                        proj_drop: cfg.drop_rate,
                    },
                    mlp_ratio: cfg.mlp_ratios[s],
                    drop: cfg.drop_rate,
                    drop_path: dpr[k],
                };
                blocks.push(Block::new(&block, &noise, vs.pp(first + i))?);
                k += 1;
            }
            stages.push(Stage { merge, blocks });
        }
        let last = *cfg
            .embed_dims
            .last()
            .expect("validated: at least one stage");
        let head = match cfg.num_classes {
            0 => None,
            n => Some(linear_normal(vb.pp("head"), cfg.neck_dim, n, true, 0.02)?),
        };
        Ok(Self {
            cfg: cfg.clone(),
            patch_embed: ConvStem::new(cfg, vb.pp("patch_embed"))?,
            global_token: vb.get_with_hints(
                (1, cfg.num_tokens, cfg.embed_dims[0]),
                "global_token",
                Init::Randn {
                    mean: 0.0,
                    stdev: 0.02,
                },
            )?,
            stages,
            norm: LayerNorm::new(vb.pp("norm"), last, 1e-6)?,
            neck_fc: linear_normal(vb.pp("neck.0"), last, cfg.neck_dim, true, 0.02)?,
            neck_norm: LayerNorm::new(vb.pp("neck.1"), cfg.neck_dim, 1e-5)?,
            head,
            noise,
        })
    }

    /// The random source of drop path and dropout (reseeded by the trainer every step).
    pub fn noise(&self) -> &Noise {
        &self.noise
    }

    /// Logits `[b, num_classes]` (the pooled features when `num_classes` is 0), collecting
    /// intermediate outputs into `taps` under the parity fixtures' names.
    pub fn forward_taps(&self, x: &Tensor, train: bool, taps: &mut Taps) -> Result<Tensor> {
        let (tokens, _) = self.neck_tokens(x, train, taps)?;
        let features = Self::pool(&tokens)?;
        taps.put(|| "features".into(), &features);
        match &self.head {
            Some(head) => head.forward(&features),
            None => Ok(features),
        }
    }

    /// The head's input `[b, neck_dim]`: the mean over every token, global ones included.
    pub fn features(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        Self::pool(&self.neck_tokens(x, train, &mut Taps::off())?.0)
    }

    /// The image tokens after the neck as a map `[b, neck_dim, h, w]` (global tokens left out).
    pub fn feature_map(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let (tokens, (gh, gw)) = self.neck_tokens(x, train, &mut Taps::off())?;
        let (b, _, c) = tokens.dims3()?;
        tokens
            .narrow(1, self.cfg.num_tokens, gh * gw)?
            .transpose(1, 2)?
            .reshape((b, c, gh, gw))
    }

    fn pool(tokens: &Tensor) -> Result<Tensor> {
        let n = tokens.dim(1)?;
        ember_ops::sum_keepdim(tokens, 1)?.squeeze(1)? / n as f64
    }

    /// Every token after the final norm and the neck `[b, global + h*w, neck_dim]`, and the
    /// last stage's grid.
    fn neck_tokens(
        &self,
        x: &Tensor,
        train: bool,
        taps: &mut Taps,
    ) -> Result<(Tensor, (usize, usize))> {
        let (_, _, h, w) = x.dims4()?;
        let grids = self.cfg.grids(h, w).map_err(candle_core::Error::msg)?;
        let (tokens, _) = self.patch_embed.forward_t(x, train, taps)?;
        let b = tokens.dim(0)?;
        let global =
            self.global_token
                .broadcast_as((b, self.cfg.num_tokens, self.cfg.embed_dims[0]))?;
        let mut x = Tensor::cat(&[&global, &tokens], 1)?;
        taps.put(|| "tokens_in".into(), &x);
        let mut grid = grids[0];
        for (s, stage) in self.stages.iter().enumerate() {
            if let Some(merge) = &stage.merge {
                x = merge.forward(&x, grid)?;
                grid = grids[s];
                taps.put(|| format!("stage{s}.merge"), &x);
            }
            for (i, block) in stage.blocks.iter().enumerate() {
                x = block.forward_t(&x, grid, train, taps, &format!("stage{s}.block{i}"))?;
            }
            taps.put(|| format!("stage{s}.out"), &x);
        }
        let x = self.norm.forward(&x)?;
        taps.put(|| "final_norm".into(), &x);
        let x = self
            .neck_norm
            .forward(&self.neck_fc.forward(&x)?)?
            .apply(&ember_ops::gelu)?;
        taps.put(|| "neck".into(), &x);
        Ok((x, grid))
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{DType, Device};
    use ember_core::SeededVarMap;

    use super::*;
    use crate::registry::parameter_count;

    fn build(cfg: &Config) -> (SeededVarMap, LightViT) {
        let map = SeededVarMap::new(0);
        let model = LightViT::new(cfg, map.var_builder(DType::F32, &Device::Cpu)).unwrap();
        (map, model)
    }

    #[test]
    fn tiny_small_base_have_the_official_parameter_counts() {
        for (cfg, official) in [
            (Config::tiny(), 9_377_698),
            (Config::small(), 19_200_248),
            (Config::base(), 35_195_653),
        ] {
            let (map, _) = build(&cfg);
            assert_eq!(parameter_count(map.vars()), official, "{cfg:?}");
        }
    }

    #[test]
    fn feature_map_holds_the_image_tokens_and_features_pool_every_token() {
        let mut cfg = Config::nano_32();
        cfg.in_chans = 1;
        let (_, model) = build(&cfg);
        let x = Tensor::randn(0f32, 1.0, (2, 1, 32, 32), &Device::Cpu).unwrap();
        let map = model.feature_map(&x, false).unwrap();
        let (b, c, h, w) = map.dims4().unwrap();
        assert_eq!((b, c), (2, cfg.neck_dim));
        assert_eq!(cfg.grids(32, 32).unwrap().last(), Some(&(h, w)));
        let features = model.features(&x, false).unwrap();
        assert_eq!(features.dims(), &[2, cfg.neck_dim]);
        // The head sees exactly the pooled features.
        let mut taps = Taps::on();
        model.forward_taps(&x, false, &mut taps).unwrap();
        let tapped = taps
            .into_vec()
            .into_iter()
            .find(|(n, _)| n == "features")
            .unwrap()
            .1;
        let diff = (tapped - &features)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap();
        assert_eq!(diff.to_scalar::<f32>().unwrap(), 0.0);
    }

    #[test]
    fn inputs_that_do_not_split_into_windows_are_refused_with_the_reason() {
        let cfg = Config::tiny_32();
        assert_eq!(cfg.grids(32, 32).unwrap(), vec![(8, 8), (4, 4), (2, 2)]);
        assert_eq!(
            Config::tiny().grids(224, 224).unwrap(),
            vec![(28, 28), (14, 14), (7, 7)]
        );
        let (_, model) = build(&cfg);
        let x = Tensor::zeros((1, 1, 28, 28), DType::F32, &Device::Cpu).unwrap();
        let err = model.forward_taps(&x, false, &mut Taps::off()).unwrap_err();
        assert!(err.to_string().contains("input 28x28 gives"), "{err}");
    }

    #[test]
    fn drop_path_depends_on_the_seed_and_only_in_training() {
        let cfg = Config {
            drop_path_rate: 0.5,
            ..Config::tiny_32()
        };
        let (_, model) = build(&cfg);
        let x = ember_core::EmberRng::new(1)
            .normal_tensor((4, 1, 32, 32), 0.0, 1.0, DType::F32, &Device::Cpu)
            .unwrap();
        let run = |seed: u64, train: bool| {
            model.noise().reseed(seed);
            let y = model.forward_taps(&x, train, &mut Taps::off()).unwrap();
            y.flatten_all().unwrap().to_vec1::<f32>().unwrap()
        };
        assert_eq!(run(1, true), run(1, true));
        assert_ne!(run(1, true), run(2, true));
        assert_eq!(run(1, false), run(2, false));
    }
}
