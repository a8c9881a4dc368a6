//! Masked image modelling as a pretext: per step one random mask for the batch (drawn from
//! the run seed and the step, so a resumed run draws the same masks), the model's pixel
//! predictions, and the squared error on the masked units against (per-unit normalised)
//! pixels. The backbone the loop monitors and exports is a dense Swin classifier on the
//! same encoder variables.

use candle_core::{DType, Tensor};
use ember_core::{EmberError, EmberRng, Result, RunDir, SeededVarMap};
use ember_data::Loader;
use ember_losses::{masked_mse, normalize_units, patchify};
use ember_models::mim::{self, MaskedModel, UnitMask};
use ember_models::{swin, Classifier};
use ember_train::optim::{default_groups, ParamGroup};
use ember_train::trainer::parameters;
use ember_train::{Pretext, StepLoss};

use ember_cli::pretrain::Build;

use crate::MimArgs;

/// The encoder's prefix in the var map (and in official checkpoints).
pub const ENCODER: &str = "encoder";

pub struct Mim {
    model: MaskedModel,
    backbone: Box<dyn Classifier>,
    cfg: mim::Config,
    seed: u64,
    grid_every: usize,
    epochs: usize,
    device: candle_core::Device,
    dtype: DType,
}

impl Mim {
    pub fn new(b: &Build, args: &MimArgs) -> Result<Self> {
        let encoder: swin::Config = serde_json::from_value(b.model.config.clone())
            .map_err(|e| EmberError::bad_input(format!("swin config: {e}")))?;
        let cfg = mim::Config {
            method: args.method(),
            encoder,
            decoder_embed_dim: args.decoder_dim,
            decoder_depth: args.decoder_depth,
            decoder_num_heads: args.decoder_heads,
            decoder_mlp_ratio: 4.0,
            norm_pix_loss: !args.no_norm_pix,
            mask_ratio: args.mask_ratio,
            placement: args.placement(),
        };
        cfg.validate().map_err(EmberError::bad_input)?;
        let vb = b.vars.var_builder(b.dtype, b.device);
        let model = MaskedModel::new(&cfg, vb)?;
        // Built after the model, so it takes the encoder's variables (and adds only a head).
        let backbone = b.backbone(ENCODER)?;
        Ok(Self {
            model,
            backbone,
            cfg,
            seed: b.seed,
            grid_every: args.grid_every,
            epochs: b.total_steps / b.steps_per_epoch.max(1),
            device: b.device.clone(),
            dtype: b.dtype,
        })
    }

    /// The mask of optimizer step `step`.
    fn mask(&self, step: usize) -> UnitMask {
        let mut rng = EmberRng::for_name(self.seed, &format!("mim/mask/{step}"));
        UnitMask::random(self.cfg.unit_side(), self.cfg.mask_ratio, &mut rng)
    }

    /// The per-unit target of `images`.
    fn target(&self, images: &Tensor) -> Result<Tensor> {
        let t = patchify(images, self.cfg.encoder.mask_unit())?;
        Ok(if self.cfg.norm_pix_loss {
            normalize_units(&t)?
        } else {
            t
        })
    }
}

/// `[b, units]` with 1 on `mask`'s masked units.
pub fn mask_rows(mask: &UnitMask, b: usize, like: &Tensor) -> Result<Tensor> {
    Ok(Tensor::new(mask.masked(), like.device())?
        .unsqueeze(0)?
        .repeat((b, 1))?)
}

impl Pretext for Mim {
    fn loss(&self, views: &[Tensor], _labels: &[u32], step: usize) -> Result<StepLoss> {
        let images = views
            .first()
            .ok_or_else(|| EmberError::Runtime("masked image modelling needs a view".into()))?;
        let mask = self.mask(step);
        let pred = self
            .model
            .forward_t(images, &mask, true)?
            .to_dtype(DType::F32)?;
        let target = self.target(&images.to_dtype(DType::F32)?)?;
        let rows = mask_rows(&mask, images.dim(0)?, &pred)?;
        Ok(StepLoss {
            total: masked_mse(&pred, &target, &rows)?,
            parts: Vec::new(),
        })
    }

    /// MAE's split: no weight decay for 1-d parameters (biases, norms) and for position
    /// tables and tokens; the monitor's classifier head is not trained.
    fn groups(&self, vars: &SeededVarMap, weight_decay: f64) -> Vec<ParamGroup> {
        let head = format!("{ENCODER}.{}", self.backbone.head_prefix());
        let params = parameters(vars)
            .into_iter()
            .filter(|(n, _)| !n.starts_with(&head))
            .collect();
        default_groups(params, weight_decay, &["position_bias", "token"])
    }

    fn after_epoch(&self, epoch: usize, run: &RunDir, held_out: &Loader) -> Result<()> {
        let due =
            (self.grid_every > 0 && epoch.is_multiple_of(self.grid_every)) || epoch == self.epochs;
        let Some(path) = run
            .to_write(&format!("reconstruction-epoch{epoch:03}.png"))
            .filter(|_| due)
        else {
            return Ok(());
        };
        let mut rng = EmberRng::for_name(self.seed, "mim/grid-mask");
        let mask = UnitMask::random(self.cfg.unit_side(), self.cfg.mask_ratio, &mut rng);
        let on = (&self.device, self.dtype);
        crate::grid::write(&path, &self.model, &self.cfg, &mask, held_out, on)
    }

    fn backbone(&self) -> &dyn Classifier {
        self.backbone.as_ref()
    }

    fn backbone_prefix(&self) -> &str {
        ENCODER
    }
}
