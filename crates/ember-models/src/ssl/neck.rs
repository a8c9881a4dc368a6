use candle_core::{ModuleT, Result, Tensor, D};
use candle_nn::VarBuilder;
use ember_ops::{l2_normalize, softmax};

use super::Mlp1d;

/// LEWEL's `ObjectNeck`: one head `proj` that gives both the global embedding (applied to
/// the pooled feature) and, applied to every pixel, the alignment maps; and a second head
/// `proj_obj` for the embeddings the maps aggregate.
#[derive(Debug, Clone)]
pub struct ObjectNeck {
    proj: Mlp1d,
    proj_obj: Mlp1d,
    num_heads: usize,
    scale: f64,
}

/// What the neck computes for `[n, c, h, w]` features (`d` = embedding width, `k = d /
/// heads` aligned embeddings).
pub struct NeckOutput {
    /// `proj` on `[pooled, pixel_1 .. pixel_hw]`: `[n, d, 1 + h*w]`.
    pub proj_all: Tensor,
    /// The global (instance) embedding, column 0: `[n, d, 1]`.
    pub global: Tensor,
    /// Softmax over space of the channel-normalised pixel projections: `[n, d, h*w]`.
    pub align_maps: Tensor,
    /// The features pooled by the maps, head by head: `[n, c, k]`.
    pub aligned: Tensor,
    /// `proj_obj` of the aligned features: `[n, d, k]`.
    pub objects: Tensor,
}

impl ObjectNeck {
    /// Both heads `channels -> hidden -> dim`; `dim` must divide into `num_heads` and
    /// `channels` too.
    pub fn new(
        vb: VarBuilder,
        channels: usize,
        hidden: usize,
        dim: usize,
        num_heads: usize,
        scale: f64,
    ) -> Result<Self> {
        if num_heads == 0 || !dim.is_multiple_of(num_heads) || !channels.is_multiple_of(num_heads) {
            candle_core::bail!(
                "LEWEL neck: {num_heads} heads must divide the embedding width {dim} and the feature channels {channels}"
            )
        }
        Ok(Self {
            proj: Mlp1d::new(vb.pp("proj"), channels, hidden, dim)?,
            proj_obj: Mlp1d::new(vb.pp("proj_obj"), channels, hidden, dim)?,
            num_heads,
            scale,
        })
    }

    /// The embedding width.
    pub fn dim(&self) -> usize {
        self.proj.dim_out()
    }

    /// The global embedding only, `[n, d, 1]` (`proj` on the pooled feature): what BYOL and
    /// MoCo use. In training mode its batch statistics differ from [`Self::forward_t`]'s, whose
    /// `proj` call also sees every pixel.
    pub fn global_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let pooled = x.flatten_from(2)?.mean_keepdim(2)?;
        self.proj.forward_t(&pooled, train)
    }

    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<NeckOutput> {
        let (n, c, _, _) = x.dims4()?;
        let pixels = x.flatten_from(2)?;
        let hw = pixels.dim(2)?;
        // One call on [pooled, pixels]: the batch statistics span both, as in the official code.
        let pooled = pixels.mean_keepdim(2)?;
        let proj_all = self
            .proj
            .forward_t(&Tensor::cat(&[&pooled, &pixels], 2)?, train)?;
        let d = proj_all.dim(1)?;
        let global = proj_all.narrow(2, 0, 1)?;
        let per_pixel = proj_all.narrow(2, 1, hw)?;
        let align_maps = softmax(&(l2_normalize(&per_pixel, 1)? / self.scale)?, D::Minus1)?;
        // Head h pools its c/heads feature channels with its d/heads maps.
        let heads = self.num_heads;
        let k = d / heads;
        let features = pixels.reshape((n, heads, c / heads, hw))?;
        let maps = align_maps.reshape((n, heads, k, hw))?;
        let aligned = features
            .matmul(&maps.transpose(2, 3)?.contiguous()?)?
            .reshape((n, c, k))?;
        let objects = self.proj_obj.forward_t(&aligned, train)?;
        Ok(NeckOutput {
            proj_all,
            global,
            align_maps,
            aligned,
            objects,
        })
    }
}
