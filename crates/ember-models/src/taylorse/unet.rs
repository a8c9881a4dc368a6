//! The encoders and decoders: the nested U^2 ones (each layer a small U-Net with a residual,
//! "REL" down and "RDL" up) and the plain five-layer U-Net of `is_u2 = false`.

use candle_core::{Module, Result, Tensor};
use candle_nn::{Init, VarBuilder};
use ember_ops::Conv2dParams;

use super::config::{Connect, TaylorSeConfig, DECODER_END, ENCODER_OUT, OUTER_KERNEL};
use super::layers::{ConvUnit, DeconvUnit, GateConv, GateDeconv, NormAct};
use crate::layers::Conv2d;

/// `join(x, skip)`: the running feature first, the skip second (or their sum).
fn join(connect: Connect, x: &Tensor, skip: &Tensor) -> Result<Tensor> {
    match connect {
        Connect::Cat => Tensor::cat(&[x, skip], 1),
        Connect::Add => x + skip,
    }
}

#[derive(Debug, Clone)]
enum Gate {
    Down(GateConv),
    Up(GateDeconv),
}

/// A gated (de)conv with its norm and PReLU: Sequential indices 0 and 2.
#[derive(Debug, Clone)]
struct GatedLayer {
    gate: Gate,
    tail: NormAct,
}

impl GatedLayer {
    fn new(vb: VarBuilder, cin: usize, cout: usize, k: [usize; 2], up: bool) -> Result<Self> {
        let gate = if up {
            Gate::Up(GateDeconv::new(vb.pp(0), cin, cout, k)?)
        } else {
            Gate::Down(GateConv::new(vb.pp(0), cin, cout, k)?)
        };
        Ok(Self {
            gate,
            tail: NormAct::new(vb.pp(2), cout)?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = match &self.gate {
            Gate::Down(g) => g.forward(x)?,
            Gate::Up(g) => g.forward(x)?,
        };
        self.tail.forward(&y)
    }
}

/// `En_unet_module`: a REL (`up` false: the gated conv halves F) or an RDL (the gated deconv
/// doubles it), then an inner U-Net of `scale` conv units and as many deconv units, added
/// to the gated layer's output.
#[derive(Debug, Clone)]
struct UnetModule {
    in_conv: GatedLayer,
    enco: Vec<ConvUnit>,
    deco: Vec<DeconvUnit>,
    intra: Connect,
}

impl UnetModule {
    #[allow(clippy::too_many_arguments)]
    fn new(
        vb: VarBuilder,
        cin: usize,
        cout: usize,
        k: [usize; 2],
        cfg: &TaylorSeConfig,
        scale: usize,
        up: bool,
    ) -> Result<Self> {
        let in_conv = GatedLayer::new(vb.pp("in_conv"), cin, cout, k, up)?;
        let enco = (0..scale)
            .map(|j| ConvUnit::new(vb.pp("enco").pp(j), cout, cfg.k2))
            .collect::<Result<_>>()?;
        // The first deconv unit takes the innermost feature alone; the others, joined skips.
        let deco = (0..scale)
            .map(|i| {
                let cin = if i == 0 {
                    cout
                } else {
                    cfg.intra_connect.widened(cout)
                };
                DeconvUnit::new(vb.pp("deco").pp(i), cin, cout, cfg.k2)
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            in_conv,
            enco,
            deco,
            intra: cfg.intra_connect,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let residual = self.in_conv.forward(x)?;
        let mut skips = Vec::with_capacity(self.enco.len());
        let mut x = residual.clone();
        for unit in &self.enco {
            x = unit.forward(&x)?;
            skips.push(x.clone());
        }
        for (i, unit) in self.deco.iter().enumerate() {
            x = if i == 0 {
                unit.forward(&x)?
            } else {
                unit.forward(&join(self.intra, &x, &skips[skips.len() - 1 - i])?)?
            };
        }
        residual + x
    }
}

/// An encoder: five stride-2 layers, the last to 64 channels. Returns its output and the
/// outputs of all five layers (the decoder's skips).
#[derive(Debug, Clone)]
pub struct Encoder {
    layers: Vec<EncoderLayer>,
}

#[derive(Debug, Clone)]
enum EncoderLayer {
    Nested(UnetModule),
    Plain(GatedLayer),
}

impl Encoder {
    pub fn new(vb: VarBuilder, cin: usize, cfg: &TaylorSeConfig) -> Result<Self> {
        let c = cfg.c;
        let mut layers = Vec::with_capacity(5);
        if cfg.is_u2 {
            let list = vb.pp("meta_unet_list");
            for (i, (k, scale)) in [(OUTER_KERNEL, 4), (cfg.k1, 3), (cfg.k1, 2), (cfg.k1, 1)]
                .into_iter()
                .enumerate()
            {
                let from = if i == 0 { cin } else { c };
                layers.push(EncoderLayer::Nested(UnetModule::new(
                    list.pp(i),
                    from,
                    c,
                    k,
                    cfg,
                    scale,
                    false,
                )?));
            }
            layers.push(EncoderLayer::Plain(GatedLayer::new(
                vb.pp("last_conv"),
                c,
                ENCODER_OUT,
                cfg.k1,
                false,
            )?));
        } else {
            let list = vb.pp("unet_list");
            for i in 0..5 {
                let (from, to, k) = match i {
                    0 => (cin, c, OUTER_KERNEL),
                    4 => (c, ENCODER_OUT, cfg.k1),
                    _ => (c, c, cfg.k1),
                };
                layers.push(EncoderLayer::Plain(GatedLayer::new(
                    list.pp(i),
                    from,
                    to,
                    k,
                    false,
                )?));
            }
        }
        Ok(Self { layers })
    }

    pub fn forward(&self, x: &Tensor) -> Result<(Tensor, Vec<Tensor>)> {
        let mut outs: Vec<Tensor> = Vec::with_capacity(self.layers.len());
        let mut x = x.clone();
        for layer in &self.layers {
            x = match layer {
                EncoderLayer::Nested(m) => m.forward(&x)?,
                EncoderLayer::Plain(g) => g.forward(&x)?,
            };
            outs.push(x.clone());
        }
        Ok((x, outs))
    }
}

/// The 0th-order decoder: five stride-2 upsampling layers joined with the encoder's skips
/// (deepest first), then a 1x1 conv to one channel and a sigmoid: the gain (B, T, F).
#[derive(Debug, Clone)]
pub struct Decoder {
    layers: Vec<DecoderLayer>,
    last: GatedLayer,
    to_gain: Conv2d,
    inter: Connect,
}

#[derive(Debug, Clone)]
enum DecoderLayer {
    Nested(UnetModule),
    Plain(GatedLayer),
}

impl Decoder {
    pub fn new(vb: VarBuilder, cfg: &TaylorSeConfig) -> Result<Self> {
        let (c, inter) = (cfg.c, cfg.inter_connect);
        let mut layers = Vec::with_capacity(4);
        let (last_vb, list) = if cfg.is_u2 {
            (vb.pp("last_conv"), vb.pp("meta_unet_list"))
        } else {
            (vb.pp("unet_list").pp(4), vb.pp("unet_list"))
        };
        for i in 0..4 {
            let from = inter.widened(if i == 0 { ENCODER_OUT } else { c });
            layers.push(if cfg.is_u2 {
                DecoderLayer::Nested(UnetModule::new(
                    list.pp(i),
                    from,
                    c,
                    cfg.k1,
                    cfg,
                    i + 1,
                    true,
                )?)
            } else {
                DecoderLayer::Plain(GatedLayer::new(list.pp(i), from, c, cfg.k1, true)?)
            });
        }
        let last = GatedLayer::new(
            last_vb.clone(),
            inter.widened(c),
            DECODER_END,
            OUTER_KERNEL,
            true,
        )?;
        let bound = 1.0 / (DECODER_END as f64).sqrt();
        let init = Init::Uniform {
            lo: -bound,
            up: bound,
        };
        let to_gain = Conv2d::new(
            last_vb.pp(3),
            DECODER_END,
            1,
            1,
            Conv2dParams::default(),
            true,
            init,
        )?;
        Ok(Self {
            layers,
            last,
            to_gain,
            inter,
        })
    }

    pub fn forward(&self, x: &Tensor, skips: &[Tensor]) -> Result<Tensor> {
        let mut x = x.clone();
        for (i, layer) in self.layers.iter().enumerate() {
            let joined = join(self.inter, &x, &skips[skips.len() - 1 - i])?;
            x = match layer {
                DecoderLayer::Nested(m) => m.forward(&joined)?,
                DecoderLayer::Plain(g) => g.forward(&joined)?,
            };
        }
        let x = self.last.forward(&join(self.inter, &x, &skips[0])?)?;
        candle_nn::ops::sigmoid(&self.to_gain.forward(&x)?)?.squeeze(1)
    }
}
