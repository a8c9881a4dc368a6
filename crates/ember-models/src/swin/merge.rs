//! Swin's `PatchMerging` on any set of tokens that comes in whole 2x2 blocks: each block's
//! four tokens concatenated in Swin's order `[x(2i, 2j), x(2i+1, 2j), x(2i, 2j+1),
//! x(2i+1, 2j+1)]` (row offset fastest), LayerNorm(4C), bias-free Linear(4C -> 2C); the
//! merged tokens come out in raster order of the half-resolution grid.

use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

use super::layout::Coord;
use super::WeightInit;
use crate::layers::{LayerNorm, Linear};

pub struct PatchMerging {
    norm: LayerNorm,
    reduction: Linear,
}

/// For tokens at `coords` on a `resolution`-side grid: the merged tokens' coordinates (raster
/// order) and, four per merged token, the indices of its source tokens in Swin's order. A
/// partly present 2x2 block (a mask not aligned to the last stage's tokens) is an error.
pub fn merge_plan(
    coords: &[Coord],
    resolution: usize,
) -> std::result::Result<(Vec<Coord>, Vec<u32>), String> {
    let mut at = vec![None; resolution * resolution];
    for (t, &[y, x]) in coords.iter().enumerate() {
        at[y * resolution + x] = Some(t as u32);
    }
    let half = resolution / 2;
    let (mut merged, mut sources) = (Vec::new(), Vec::new());
    for i in 0..half {
        for j in 0..half {
            let block = [
                [2 * i, 2 * j],
                [2 * i + 1, 2 * j],
                [2 * i, 2 * j + 1],
                [2 * i + 1, 2 * j + 1],
            ]
            .map(|[y, x]| at[y * resolution + x]);
            match block.iter().filter(|t| t.is_some()).count() {
                0 => {}
                4 => {
                    merged.push([i, j]);
                    sources.extend(block.iter().map(|t| t.expect("counted")));
                }
                _ => {
                    return Err(format!(
                        "the 2x2 block at ({i}, {j}) of a {resolution}-side grid is partly masked: masks must be constant on last-stage tokens"
                    ))
                }
            }
        }
    }
    Ok((merged, sources))
}

impl PatchMerging {
    pub fn new(vb: VarBuilder, dim: usize, eps: f64, init: WeightInit) -> Result<Self> {
        Ok(Self {
            norm: LayerNorm::new(vb.pp("norm"), 4 * dim, eps)?,
            reduction: init.linear(vb.pp("reduction"), 4 * dim, 2 * dim, false)?,
        })
    }

    /// `x` `[b, n, c]` and the [`merge_plan`] sources `[4 n']` -> `[b, n', 2c]`.
    pub fn forward(&self, x: &Tensor, sources: &Tensor) -> Result<Tensor> {
        let (b, _, c) = x.dims3()?;
        let n = sources.dim(0)? / 4;
        let x = x.index_select(sources, 1)?.reshape((b, n, 4 * c))?;
        self.reduction.forward(&self.norm.forward(&x)?)
    }
}

#[cfg(test)]
mod tests {
    use super::merge_plan;

    #[test]
    fn sources_follow_swins_order_and_partial_blocks_fail() {
        let coords = vec![[0, 2], [0, 3], [1, 2], [1, 3]];
        let (merged, sources) = merge_plan(&coords, 4).unwrap();
        assert_eq!(merged, vec![[0, 1]]);
        assert_eq!(sources, vec![0, 2, 1, 3]);
        assert!(merge_plan(&coords[..3], 4).is_err());
    }
}
