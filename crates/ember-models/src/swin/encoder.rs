//! The Swin encoder on a set of tokens: patch embedding, stages of blocks on the [`Plan`]'s
//! window layouts (even blocks plain, odd blocks shifted), patch merging, final LayerNorm.
//! The dense classifier runs it on every token; GreenMIM on the visible ones only; SimMIM on
//! every token with mask tokens in place of the masked ones.

use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::VarBuilder;
use ember_ops::{Conv2dParams, Pair};

use super::block::{Block, BlockShape};
use super::config::{Config, StageGeometry};
use super::layout::{Coord, Placed, WindowLayout};
use super::merge::{merge_plan, PatchMerging};
use super::WeightInit;
use crate::layers::{Conv2d, LayerNorm, Noise};
use crate::taps::Taps;

/// One stage's share of a [`Plan`].
pub struct StagePlan {
    /// Coordinates of the stage's tokens, in the order of its tensors (raster).
    pub coords: Vec<Coord>,
    /// Host layouts for the plain and (if the stage shifts) shifted windows.
    pub layouts: Vec<WindowLayout>,
    placed: Vec<Placed>,
    /// The patch merging sources after this stage (none after the last).
    merge: Option<Tensor>,
}

impl StagePlan {
    /// The layout of block `b`: odd blocks use the shifted one when the stage shifts.
    fn placed(&self, b: usize) -> &Placed {
        &self.placed[b % 2 % self.placed.len()]
    }
}

/// Where a set of tokens goes at every stage: window layouts and merges, computed once per
/// token set (per batch for GreenMIM's batch-shared mask, once for a dense model).
pub struct Plan {
    /// Stage-0 token indices into the full patch grid; `None` when all are kept.
    pub kept: Option<Tensor>,
    pub stages: Vec<StagePlan>,
}

impl Plan {
    /// The plan for the stage-0 tokens at `coords` (raster order; every token if `None`).
    pub fn new(
        geometry: &[StageGeometry],
        coords: Option<Vec<Coord>>,
        dtype: DType,
        device: &Device,
    ) -> std::result::Result<Self, String> {
        let side = geometry[0].resolution;
        let err = |e: candle_core::Error| e.to_string();
        let (kept, mut coords) = match coords {
            None => (
                None,
                (0..side)
                    .flat_map(|y| (0..side).map(move |x| [y, x]))
                    .collect(),
            ),
            Some(c) => {
                let idx: Vec<u32> = c.iter().map(|&[y, x]| (y * side + x) as u32).collect();
                (Some(Tensor::new(idx, device).map_err(err)?), c)
            }
        };
        if coords.is_empty() {
            return Err("no token is kept".into());
        }
        let mut stages = Vec::with_capacity(geometry.len());
        for (s, g) in geometry.iter().enumerate() {
            let mut layouts = vec![WindowLayout::new(&coords, g.window, 0)];
            if g.shift > 0 {
                layouts.push(WindowLayout::new(&coords, g.window, g.shift));
            }
            let placed = layouts
                .iter()
                .map(|l| l.place(&coords, dtype, device))
                .collect::<Result<Vec<_>>>()
                .map_err(err)?;
            let (merge, next) = if s + 1 < geometry.len() {
                let (next, sources) = merge_plan(&coords, g.resolution)?;
                (Some(Tensor::new(sources, device).map_err(err)?), next)
            } else {
                (None, Vec::new())
            };
            stages.push(StagePlan {
                coords: std::mem::replace(&mut coords, next),
                layouts,
                placed,
                merge,
            });
        }
        Ok(Self { kept, stages })
    }
}

struct Stage {
    blocks: Vec<Block>,
    downsample: Option<PatchMerging>,
}

pub struct SwinEncoder {
    proj: Conv2d,
    patch_norm: LayerNorm,
    stages: Vec<Stage>,
    norm: LayerNorm,
    geometry: Vec<StageGeometry>,
    noise: Noise,
}

impl SwinEncoder {
    /// The encoder's variables under `vb` (official names: `patch_embed.*`, `layers.*`,
    /// `norm.*`).
    pub fn new(cfg: &Config, init: WeightInit, vb: VarBuilder) -> Result<Self> {
        let noise = Noise::default();
        let geometry = cfg.stages();
        let rates = cfg.drop_path_rates();
        let p = cfg.patch_size;
        let proj = Conv2d::new(
            vb.pp("patch_embed").pp("proj"),
            cfg.in_chans,
            cfg.embed_dim,
            p,
            Conv2dParams::default().stride(Pair::from(p)),
            true,
            init.conv(cfg.in_chans * p * p, cfg.embed_dim),
        )?;
        let mut stages = Vec::new();
        let mut block_index = 0;
        for (s, g) in geometry.iter().enumerate() {
            let vs = vb.pp("layers").pp(s);
            let mut blocks = Vec::new();
            for b in 0..cfg.depths[s] {
                let shape = BlockShape {
                    dim: g.dim,
                    heads: cfg.num_heads[s],
                    window: g.window,
                    mlp_ratio: cfg.mlp_ratio,
                    qkv_bias: cfg.qkv_bias,
                    eps: cfg.norm_eps,
                    drop_path: rates[block_index],
                };
                blocks.push(Block::new(&shape, &noise, init, vs.pp("blocks").pp(b))?);
                block_index += 1;
            }
            let downsample = if s + 1 < geometry.len() {
                Some(PatchMerging::new(
                    vs.pp("downsample"),
                    g.dim,
                    cfg.norm_eps,
                    init,
                )?)
            } else {
                None
            };
            stages.push(Stage { blocks, downsample });
        }
        Ok(Self {
            proj,
            patch_norm: LayerNorm::new(
                vb.pp("patch_embed").pp("norm"),
                cfg.embed_dim,
                cfg.norm_eps,
            )?,
            stages,
            norm: LayerNorm::new(vb.pp("norm"), cfg.out_dim(), cfg.norm_eps)?,
            geometry,
            noise,
        })
    }

    pub fn geometry(&self) -> &[StageGeometry] {
        &self.geometry
    }

    pub fn noise(&self) -> &Noise {
        &self.noise
    }

    /// Patch embedding of images `[b, c, h, w]`: every token `[b, h/p * w/p, embed_dim]`,
    /// raster order, LayerNormed.
    pub fn embed(&self, x: &Tensor) -> Result<Tensor> {
        let x = self.proj.forward(x)?;
        self.patch_norm
            .forward(&x.flatten_from(2)?.transpose(1, 2)?)
    }

    /// The stages and the final LayerNorm on the tokens `plan` keeps: `tokens` are all the
    /// embedded tokens `[b, n0, c]` (the plan selects its own) -> `[b, n_last, c_last]`.
    /// Taps: `stage0.in`, `stageS.blockB`, `stageS.merged`, `latent`.
    pub fn forward_plan(
        &self,
        tokens: &Tensor,
        plan: &Plan,
        train: bool,
        taps: &mut Taps,
    ) -> Result<Tensor> {
        let mut x = match &plan.kept {
            Some(idx) => tokens.index_select(idx, 1)?,
            None => tokens.clone(),
        };
        taps.put(|| "stage0.in".into(), &x);
        for (s, (stage, sp)) in self.stages.iter().zip(&plan.stages).enumerate() {
            for (b, block) in stage.blocks.iter().enumerate() {
                x = block.forward_t(&x, sp.placed(b), train)?;
                taps.put(|| format!("stage{s}.block{b}"), &x);
            }
            if let (Some(down), Some(sources)) = (&stage.downsample, &sp.merge) {
                x = down.forward(&x, sources)?;
                taps.put(|| format!("stage{s}.merged"), &x);
            }
        }
        let x = self.norm.forward(&x)?;
        taps.put(|| "latent".into(), &x);
        Ok(x)
    }
}
