//! Ember's losses. The supervised ones take logits `[n, classes]` (DIST also `[n, classes, h,
//! w]`), the self-supervised ones embeddings, the masked-image-modelling one pixels, MasKD's masks and features; each returns a scalar reduced as the official
//! code reduces it; all are compositions of differentiable candle and Ember ops.

mod cross_entropy;
mod distill;
mod maskd;
mod mim;
mod speech;
mod ssl;

pub use cross_entropy::{cross_entropy, soft_target_cross_entropy};
pub use distill::{kd_loss, Dist, DistTerms, Probabilities};
pub use maskd::{
    custom_masks, dice_diversity, masked_feature_loss, MaskModule, Masked, MaskedLogitLoss,
};
pub use mim::{masked_mse, normalize_units, patchify, unpatchify};
pub use speech::{com_mag_loss, ComMag, Distance};
pub use ssl::{
    as_rows, infonce, lewel_pair, normalized_mse, relation_from_logits, relation_loss, Relation,
};
