//! MasKD (Huang et al., arXiv 2205.14589): receptive tokens that turn a teacher's feature map
//! into soft spatial masks, the Dice diversity loss that keeps the masks apart, and the
//! masked distillation losses of the official code (hunto/MasKD: `mmrazor/.../maskd.py` for
//! detection-style features, `segmentation/losses/maskd.py` for logits).
//!
//! Every mask is an independent sigmoid of an unscaled dot product between a token and the
//! feature vector at a pixel: no 1/sqrt(C), no normalisation, no softmax over tokens or
//! pixels (spec 2.6.1).

use candle_core::{DType, Result, Tensor, D};
use candle_nn::ops::{sigmoid, softmax};
use candle_nn::{Init, VarBuilder};
use ember_ops::{conv2d, Conv2dParams};

/// Receptive tokens for one feature level with `channels` channels, under the official names
/// (`mask_token`, and with the weighting head `prob.0.*` / `prob.2.*`).
#[derive(Debug, Clone)]
pub struct MaskModule {
    /// `[tokens, channels]`.
    token: Tensor,
    prob: Option<TokenWeights>,
}

/// The detection variant's head `prob`: 3x3 conv with bias, global average pool, 1x1 conv to
/// one score per token.
#[derive(Debug, Clone)]
struct TokenWeights {
    conv: (Tensor, Tensor),
    score: (Tensor, Tensor),
}

/// What stage 1 feeds the frozen task head: the masked feature and the masks it used.
pub struct Masked {
    /// `sum_t M_t * F` (segmentation) or `sum_t p_t M_t * F` (detection), `[n, c, h, w]`.
    pub output: Tensor,
    /// `[n, tokens, h, w]`.
    pub masks: Tensor,
}

/// The official initialisers: tokens N(0, 0.01^2); the head's convs fan-out He normal
/// (`N(0, 2 / (k * k * out))`) with zero biases.
fn fan_out_normal(k: usize, out: usize) -> Init {
    Init::Randn {
        mean: 0.0,
        stdev: (2.0 / (k * k * out) as f64).sqrt(),
    }
}

impl MaskModule {
    /// `weight_mask`: the detection variant's token-weighting head.
    pub fn new(vb: VarBuilder, channels: usize, tokens: usize, weight_mask: bool) -> Result<Self> {
        if channels == 0 || tokens == 0 {
            candle_core::bail!("maskd: a mask module needs channels and tokens, got {channels} channels and {tokens} tokens")
        }
        let token = vb.get_with_hints(
            (tokens, channels),
            "mask_token",
            Init::Randn {
                mean: 0.0,
                stdev: 0.01,
            },
        )?;
        let prob = if weight_mask {
            let p = vb.pp("prob");
            let conv = (
                p.get_with_hints(
                    (channels, channels, 3, 3),
                    "0.weight",
                    fan_out_normal(3, channels),
                )?,
                p.get_with_hints(channels, "0.bias", Init::Const(0.0))?,
            );
            let score = (
                p.get_with_hints(
                    (tokens, channels, 1, 1),
                    "2.weight",
                    fan_out_normal(1, tokens),
                )?,
                p.get_with_hints(tokens, "2.bias", Init::Const(0.0))?,
            );
            Some(TokenWeights { conv, score })
        } else {
            None
        };
        Ok(Self { token, prob })
    }

    pub fn tokens(&self) -> usize {
        self.token.dims()[0]
    }

    pub fn channels(&self) -> usize {
        self.token.dims()[1]
    }

    /// `sigmoid(token_t . F[:, :, h, w])` for every token: `[n, c, h, w]` -> `[n, tokens, h, w]`.
    pub fn masks(&self, feature: &Tensor) -> Result<Tensor> {
        let (n, c, h, w) = feature.dims4()?;
        if c != self.channels() {
            candle_core::bail!(
                "maskd: the feature has {c} channels but the tokens {}",
                self.channels()
            )
        }
        let token = self.token.to_dtype(feature.dtype())?;
        let logits = token.broadcast_matmul(&feature.reshape((n, c, h * w))?)?;
        sigmoid(&logits)?.reshape((n, self.tokens(), h, w))
    }

    /// The detection head's token weights `softmax_t(prob(F))`, `[n, tokens]`; `None` without
    /// the head.
    pub fn token_weights(&self, feature: &Tensor) -> Result<Option<Tensor>> {
        let Some(head) = &self.prob else {
            return Ok(None);
        };
        let conv = |x: &Tensor, (w, b): &(Tensor, Tensor), pad: usize| -> Result<Tensor> {
            let y = conv2d(x, w, Conv2dParams::default().padding(pad))?;
            y.broadcast_add(&b.reshape((1, (), 1, 1))?)
        };
        let hidden = conv(feature, &head.conv, 1)?;
        let pooled = hidden.mean_keepdim(D::Minus1)?.mean_keepdim(D::Minus2)?;
        let scores = conv(&pooled, &head.score, 0)?.flatten_from(1)?;
        Ok(Some(softmax(&scores, D::Minus1)?))
    }

    /// Stage 1's masked feature: the masks' (weighted) sum times the feature. That sum is
    /// not normalised: with T tokens it is up to T times the feature (spec 2.6.2).
    pub fn masked(&self, feature: &Tensor) -> Result<Masked> {
        let masks = self.masks(feature)?;
        let gain = match self.token_weights(feature)? {
            Some(p) => masks.broadcast_mul(&p.unsqueeze(2)?.unsqueeze(3)?)?,
            None => masks.clone(),
        }
        .sum_keepdim(1)?;
        let output = feature.broadcast_mul(&gain)?;
        Ok(Masked { output, masks })
    }
}

/// The Dice coefficient between every ordered pair of distinct masks, averaged over the
/// `n * t * (t - 1)` pairs: `2 <m_i, m_j> / ((|m_i|^2 + 1e-12) + (|m_j|^2 + 1e-12))`. It is
/// minimised, so lower means more diverse masks. `masks` is `[n, t, h, w]`.
pub fn dice_diversity(masks: &Tensor) -> Result<Tensor> {
    let (n, t, h, w) = masks.dims4()?;
    if t < 2 {
        candle_core::bail!("maskd: the Dice diversity loss needs at least two tokens, got {t}")
    }
    let m = masks.to_dtype(DType::F32)?.reshape((n, t, h * w))?;
    let inner = m.matmul(&m.t()?)?;
    let norms = (m.sqr()?.sum_keepdim(D::Minus1)? + 1e-12)?;
    let denominators = norms.broadcast_add(&norms.t()?)?;
    let dice = ((inner * 2.0)? / denominators)?;
    let off_diagonal = (1.0 - Tensor::eye(t, DType::F32, masks.device())?)?;
    let pairs = (n * t * (t - 1)) as f64;
    dice.broadcast_mul(&off_diagonal)?.sum_all()? / pairs
}

/// `e[n, t, c] = sum_hw (M (S - T))^2 / (sum_hw M + eps)`: the squared mask weights the
/// numerator, its L1 sum normalises it (spec 2.6.4). Returned `[n, t, c]`, in f32.
fn masked_errors(masks: &Tensor, student: &Tensor, teacher: &Tensor, eps: f64) -> Result<Tensor> {
    if student.dims() != teacher.dims() {
        candle_core::bail!(
            "maskd: student {:?} but teacher {:?}",
            student.dims(),
            teacher.dims()
        )
    }
    let (n, c, h, w) = student.dims4()?;
    let (mn, t, mh, mw) = masks.dims4()?;
    if (mn, mh, mw) != (n, h, w) {
        candle_core::bail!(
            "maskd: masks {:?} do not cover features {:?}",
            masks.dims(),
            student.dims()
        )
    }
    let masks = masks.to_dtype(DType::F32)?.reshape((n, t, h * w))?;
    let diff = (student.to_dtype(DType::F32)? - teacher.to_dtype(DType::F32)?)?;
    let squared = diff.sqr()?.reshape((n, c, h * w))?;
    // sum_hw M^2 (S - T)^2 for every (t, c) pair is one batched matmul.
    let numerator = masks.sqr()?.matmul(&squared.t()?)?;
    let denominator = (masks.sum_keepdim(D::Minus1)? + eps)?;
    numerator.broadcast_div(&denominator)
}

/// The detection-style feature loss of one level: `mean_n sum_t p[n, t] mean_c e[n, t, c]`
/// with no eps in `e`'s denominator, as the official code. `masks` come from the teacher (or,
/// after the custom-mask warm-up, the teacher's times the student's, see [`custom_masks`]),
/// `weights` from the teacher's token-weighting head; neither needs a gradient.
pub fn masked_feature_loss(
    masks: &Tensor,
    weights: &Tensor,
    student: &Tensor,
    teacher: &Tensor,
) -> Result<Tensor> {
    let errors = masked_errors(masks, student, teacher, 0.0)?.mean(D::Minus1)?;
    let weights = weights.to_dtype(DType::F32)?;
    if weights.dims() != errors.dims() {
        candle_core::bail!(
            "maskd: token weights {:?} but masks for {:?}",
            weights.dims(),
            errors.dims()
        )
    }
    (errors * weights)?.sum(1)?.mean_all()
}

/// After the warm-up the detection loss uses the teacher's masks times the student's (the
/// student's computed through the same frozen tokens, without a gradient).
pub fn custom_masks(
    module: &MaskModule,
    teacher_masks: &Tensor,
    student: &Tensor,
) -> Result<Tensor> {
    teacher_masks.mul(&module.masks(&student.detach())?)
}

/// The segmentation loss on logits: `scale * mean_{n,t,c} e[n, t, c]` with `eps` in `e`'s
/// denominator. [`Default`] is the official 0.5 and 1e-5 (the scale is part of the official
/// loss, not the distillation weight λ, which the caller applies).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MaskedLogitLoss {
    pub scale: f64,
    pub eps: f64,
}

impl Default for MaskedLogitLoss {
    fn default() -> Self {
        Self {
            scale: 0.5,
            eps: 1e-5,
        }
    }
}

impl MaskedLogitLoss {
    pub fn loss(&self, masks: &Tensor, student: &Tensor, teacher: &Tensor) -> Result<Tensor> {
        masked_errors(masks, student, teacher, self.eps)?.mean_all()? * self.scale
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn identical_masks_have_dice_one_and_disjoint_ones_zero() {
        let dev = Device::Cpu;
        let same = Tensor::ones((1, 3, 2, 2), DType::F32, &dev).unwrap();
        let d = dice_diversity(&same).unwrap().to_scalar::<f32>().unwrap();
        assert!((d - 1.0).abs() < 1e-6, "{d}");
        let disjoint = Tensor::eye(4, DType::F32, &dev)
            .unwrap()
            .reshape((1, 4, 2, 2))
            .unwrap();
        let d = dice_diversity(&disjoint)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(d.abs() < 1e-6, "{d}");
    }

    #[test]
    fn equal_features_give_zero_loss_and_shape_errors_are_reported() {
        let dev = Device::Cpu;
        let f = Tensor::randn(0f32, 1.0, (2, 3, 4, 4), &dev).unwrap();
        let masks = sigmoid(&Tensor::randn(0f32, 1.0, (2, 5, 4, 4), &dev).unwrap()).unwrap();
        let loss = MaskedLogitLoss::default();
        let l = loss.loss(&masks, &f, &f).unwrap();
        assert_eq!(l.to_scalar::<f32>().unwrap(), 0.0);
        let small = Tensor::zeros((2, 3, 2, 2), DType::F32, &dev).unwrap();
        assert!(loss.loss(&masks, &small, &small).is_err());
    }
}
