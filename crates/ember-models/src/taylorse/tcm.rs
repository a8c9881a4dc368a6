//! The squeezed temporal convolution units (S-TCN) and their groups, on (B, d_feat, T).

use candle_core::{Result, Tensor};
use candle_nn::{Init, VarBuilder};
use ember_ops::{conv1d, Conv1dParams};

use super::config::TaylorSeConfig;
use super::layers::{instance_norm, PRelu};

fn weight(vb: &VarBuilder, name: &str, cout: usize, cin: usize, k: usize) -> Result<Tensor> {
    let bound = 1.0 / ((cin * k) as f64).sqrt();
    vb.get_with_hints(
        (cout, cin, k),
        name,
        Init::Uniform {
            lo: -bound,
            up: bound,
        },
    )
}

/// One branch: PReLU, norm, (zero padding), conv, in that official (pre-activation) order.
#[derive(Debug, Clone)]
struct Branch {
    act: PRelu,
    conv: Tensor,
}

impl Branch {
    fn new(vb: VarBuilder, cin: usize, cout: usize, k: usize, conv_index: usize) -> Result<Self> {
        Ok(Self {
            act: PRelu::new(vb.pp(0), cin)?,
            conv: weight(&vb.pp(conv_index), "weight", cout, cin, k)?,
        })
    }

    fn forward(&self, x: &Tensor, pad: (usize, usize), dilation: usize) -> Result<Tensor> {
        let x = instance_norm(&self.act.forward(x)?)?;
        let x = if pad != (0, 0) {
            x.pad_with_zeros(2, pad.0, pad.1)?
        } else {
            x
        };
        conv1d(
            &x,
            &self.conv,
            Conv1dParams {
                dilation,
                ..Default::default()
            },
        )
    }
}

/// `SqueezedTCM`: 1x1 squeeze to cd1, a dilated conv times a sigmoid-gated dilated conv,
/// 1x1 back to d_feat, plus the input. No conv has a bias.
#[derive(Debug, Clone)]
pub struct SqueezedTcm {
    squeeze: Tensor,
    left: Branch,
    right: Branch,
    out: Branch,
    dilation: usize,
    pad: (usize, usize),
}

impl SqueezedTcm {
    pub fn new(vb: VarBuilder, cfg: &TaylorSeConfig, dilation: usize) -> Result<Self> {
        let (d, c, k) = (cfg.d_feat, cfg.cd1, cfg.kd1);
        let span = (k - 1) * dilation;
        let pad = if cfg.is_causal {
            (span, 0)
        } else {
            (span / 2, span / 2)
        };
        Ok(Self {
            squeeze: weight(&vb.pp("in_conv"), "weight", c, d, 1)?,
            left: Branch::new(vb.pp("left_conv"), c, c, k, 3)?,
            right: Branch::new(vb.pp("right_conv"), c, c, k, 3)?,
            out: Branch::new(vb.pp("out_conv"), c, d, 1, 2)?,
            dilation,
            pad,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = conv1d(x, &self.squeeze, Conv1dParams::default())?;
        let left = self.left.forward(&y, self.pad, self.dilation)?;
        let right = candle_nn::ops::sigmoid(&self.right.forward(&y, self.pad, self.dilation)?)?;
        self.out.forward(&(left * right)?, (0, 0), 1)? + x
    }
}

/// `TCMList`: one unit per dilation, chained.
#[derive(Debug, Clone)]
pub struct TcmGroup {
    units: Vec<SqueezedTcm>,
}

impl TcmGroup {
    pub fn new(vb: VarBuilder, cfg: &TaylorSeConfig) -> Result<Self> {
        let list = vb.pp("tcm_list");
        let units = cfg
            .dilations
            .iter()
            .enumerate()
            .map(|(j, &d)| SqueezedTcm::new(list.pp(j), cfg, d))
            .collect::<Result<_>>()?;
        Ok(Self { units })
    }

    /// The output, and the first unit's output (a parity tap).
    pub fn forward(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        let mut x = x.clone();
        let mut first = None;
        for unit in &self.units {
            x = unit.forward(&x)?;
            first.get_or_insert_with(|| x.clone());
        }
        Ok((x.clone(), first.unwrap_or(x)))
    }
}

/// p groups chained, as `nn.ModuleList` `tcms`.
pub fn tcm_groups(vb: VarBuilder, cfg: &TaylorSeConfig) -> Result<Vec<TcmGroup>> {
    (0..cfg.p)
        .map(|i| TcmGroup::new(vb.pp("tcms").pp(i), cfg))
        .collect()
}
