//! TaylorSENet: the 0th-order magnitude filter plus high-order complex terms from trainable
//! derivative operators, summed as a Taylor series (spec section 1):
//!
//! Z = gain |X| e^{j angle X},  T_1 = D_1(H, Z),  T_n = D_n(H, T_{n-1}) + (n - 1) T_{n-1},
//! S = Z + sum_n T_n / n!
//!
//! Input and output are compressed complex spectra (B, 2, T, F); compression happens outside.

use candle_core::{Result, Tensor};
use candle_nn::{Init, VarBuilder};
use ember_ops::{conv1d, Conv1dParams};

use super::config::{TaylorSeConfig, ENCODER_OUT};
use super::layers::{from_sequence, to_sequence};
use super::tcm::{tcm_groups, TcmGroup};
use super::unet::{Decoder, Encoder};
use crate::taps::Taps;

/// A 1x1 `nn.Conv1d` with bias.
#[derive(Debug, Clone)]
struct Pointwise {
    weight: Tensor,
    bias: Tensor,
}

impl Pointwise {
    fn new(vb: VarBuilder, cin: usize, cout: usize) -> Result<Self> {
        let bound = 1.0 / (cin as f64).sqrt();
        let init = Init::Uniform {
            lo: -bound,
            up: bound,
        };
        Ok(Self {
            weight: vb.get_with_hints((cout, cin, 1), "weight", init)?,
            bias: vb.get_with_hints(cout, "bias", init)?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = conv1d(x, &self.weight, Conv1dParams::default())?;
        ember_ops::broadcast_add(&y, &self.bias.reshape((1, (), 1))?)
    }
}

fn run_groups(
    groups: &[TcmGroup],
    x: &Tensor,
    mut first: impl FnMut(usize, &Tensor),
) -> Result<Tensor> {
    let mut x = x.clone();
    for (i, group) in groups.iter().enumerate() {
        let (out, head) = group.forward(&x)?;
        first(i, &head);
        x = out;
    }
    Ok(x)
}

/// `ZeroOrderBlock`: U^2 encoder on the magnitude, TCN groups, U^2 decoder -> gain (B, T, F).
#[derive(Debug, Clone)]
struct ZeroOrder {
    en: Encoder,
    tcms: Vec<TcmGroup>,
    de: Decoder,
}

impl ZeroOrder {
    fn new(vb: VarBuilder, cfg: &TaylorSeConfig) -> Result<Self> {
        Ok(Self {
            en: Encoder::new(vb.pp("en"), cfg.cin / 2, cfg)?,
            tcms: tcm_groups(vb.clone(), cfg)?,
            de: Decoder::new(vb.pp("de"), cfg)?,
        })
    }

    /// The gain and the encoder's flattened output before the TCNs.
    fn forward(&self, magnitude: &Tensor, taps: &mut Taps) -> Result<(Tensor, Tensor)> {
        let (en, skips) = self.en.forward(magnitude)?;
        taps.put(|| "zo.en.block0".into(), &skips[0]);
        taps.put(|| "zo.en_out".into(), &en);
        let head = to_sequence(&en)?;
        taps.put(|| "zo.feature_head".into(), &head);
        let seq = run_groups(&self.tcms, &head, |i, t| {
            taps.put(|| format!("zo.tcm{i}.stcm0"), t)
        })?;
        taps.put(|| "zo.tcm_out".into(), &seq);
        let gain = self
            .de
            .forward(&from_sequence(&seq, ENCODER_OUT)?, &skips)?;
        taps.put(|| "zo.gain".into(), &gain);
        Ok((gain, head))
    }
}

/// `HighOrderBlock`, the derivative operator: cat[H, previous term flattened (all real bins,
/// then all imaginary)], 1x1 conv, TCN groups, two 1x1 heads for the real and imaginary parts.
#[derive(Debug, Clone)]
struct Derivative {
    in_conv: Pointwise,
    tcms: Vec<TcmGroup>,
    real: Pointwise,
    imag: Pointwise,
}

impl Derivative {
    fn new(vb: VarBuilder, cfg: &TaylorSeConfig) -> Result<Self> {
        let (f, d) = (cfg.bins(), cfg.d_feat);
        Ok(Self {
            in_conv: Pointwise::new(vb.pp("in_conv"), 2 * f + d, d)?,
            tcms: tcm_groups(vb.clone(), cfg)?,
            real: Pointwise::new(vb.pp("real_resi"), d, f)?,
            imag: Pointwise::new(vb.pp("imag_resi"), d, f)?,
        })
    }

    fn forward(
        &self,
        head: &Tensor,
        previous: &Tensor,
        order: usize,
        taps: &mut Taps,
    ) -> Result<Tensor> {
        let (b, _, t, f) = previous.dims4()?;
        let previous = previous
            .transpose(2, 3)?
            .contiguous()?
            .reshape((b, 2 * f, t))?;
        let x = self.in_conv.forward(&Tensor::cat(&[head, &previous], 1)?)?;
        taps.put(|| format!("order{order}.in_conv"), &x);
        let x = run_groups(&self.tcms, &x, |_, _| {})?;
        let part = |p: &Pointwise| p.forward(&x)?.transpose(1, 2);
        Tensor::stack(&[part(&self.real)?, part(&self.imag)?], 1)
    }
}

/// The whole network with the official parameter names.
#[derive(Debug, Clone)]
pub struct TaylorSeNet {
    config: TaylorSeConfig,
    zero: ZeroOrder,
    separate_en: Option<Encoder>,
    derivatives: Vec<Derivative>,
}

impl TaylorSeNet {
    pub fn new(vb: VarBuilder, config: &TaylorSeConfig) -> ember_core::Result<Self> {
        config.validate()?;
        let zero = ZeroOrder::new(vb.pp("zeroorderblock"), config)?;
        let separate_en = if config.is_encoder_share {
            None
        } else {
            Some(Encoder::new(vb.pp("separate_en"), config.cin, config)?)
        };
        let operators = if config.is_param_share {
            config.order_num.min(1)
        } else {
            config.order_num
        };
        let list = vb.pp("highorderblock_list");
        let derivatives = (0..operators)
            .map(|n| Derivative::new(list.pp(n), config))
            .collect::<Result<_>>()?;
        Ok(Self {
            config: config.clone(),
            zero,
            separate_en,
            derivatives,
        })
    }

    pub fn config(&self) -> &TaylorSeConfig {
        &self.config
    }

    /// The enhanced compressed spectrum (B, 2, T, F) of a compressed noisy one.
    pub fn forward(&self, input: &Tensor) -> Result<Tensor> {
        self.forward_with_taps(input, &mut Taps::off())
    }

    /// [`forward`](Self::forward), keeping the official intermediate outputs in `taps`.
    pub fn forward_with_taps(&self, input: &Tensor, taps: &mut Taps) -> Result<Tensor> {
        let input = if input.rank() == 3 {
            input.unsqueeze(1)?
        } else {
            input.clone()
        };
        let magnitude = input.sqr()?.sum_keepdim(1)?.sqrt()?;
        let (gain, head0) = self.zero.forward(&magnitude, taps)?;
        // gain |X| (cos, sin)(angle X) = gain (re, im): the same numbers (the spec's allowed
        // rewrite, 5e-6 on the fixture) without atan2, which candle lacks.
        let zero_term = ember_ops::broadcast_mul(&input, &gain.unsqueeze(1)?)?;
        taps.put(|| "zero_term".into(), &zero_term);
        let head = match &self.separate_en {
            Some(en) => to_sequence(&en.forward(&input)?.0)?,
            None => head0,
        };
        if self.separate_en.is_some() {
            taps.put(|| "feature_head".into(), &head);
        }
        let (mut out, mut previous) = (zero_term.clone(), zero_term.clone());
        let mut factorial = 1.0;
        for n in 0..self.config.order_num {
            let operator = &self.derivatives[if self.config.is_param_share { 0 } else { n }];
            let derivative = operator.forward(&head, &previous, n, taps)?;
            taps.put(|| format!("order{n}.derivative"), &derivative);
            let term = (derivative + (&previous * n as f64)?)?;
            taps.put(|| format!("order{n}.term"), &term);
            factorial *= (n + 1) as f64;
            out = (out + (&term / factorial)?)?;
            previous = term;
        }
        if taps.is_on() {
            taps.put(|| "residual".into(), &(&out - &zero_term)?);
            taps.put(|| "output".into(), &out);
        }
        Ok(out)
    }
}
