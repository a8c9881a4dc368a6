//! Swin Transformer (timm / official names) on sets of tokens: window attention over
//! coordinate-assigned windows packed into groups (GreenMIM's Group Window Attention), so
//! the same blocks run the dense classifier, GreenMIM's visible-only encoder and SimMIM's
//! dense encoder with mask tokens.

pub mod attention;
pub mod block;
pub mod config;
pub mod encoder;
pub mod flops;
pub mod grouping;
pub mod layout;
pub mod merge;

mod classifier;

use candle_core::Result;
use candle_nn::VarBuilder;

pub use classifier::Swin;
pub use config::{Config, StageGeometry};
pub use encoder::{Plan, SwinEncoder};
pub use layout::{Coord, Mode, WindowLayout};

use crate::layers::{linear_normal, linear_xavier, Linear};

/// How a model's Linear and patch-embedding weights start: Swin's classifier draws Linear
/// weights from N(0, 0.02) and keeps PyTorch's conv default; MAE-style pre-training
/// (GreenMIM) re-initialises every Linear, and the patch embedding seen as a Linear, with
/// Xavier-uniform. Biases of Linear layers start at 0 in both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightInit {
    Swin,
    Xavier,
}

impl WeightInit {
    pub fn linear(self, vb: VarBuilder, cin: usize, cout: usize, bias: bool) -> Result<Linear> {
        match self {
            Self::Swin => linear_normal(vb, cin, cout, bias, 0.02),
            Self::Xavier => linear_xavier(vb, cin, cout, bias),
        }
    }

    /// The initialiser of a conv weight with `fan_in` inputs per output and `cout` outputs.
    pub fn conv(self, fan_in: usize, cout: usize) -> candle_nn::Init {
        let bound = match self {
            Self::Swin => 1.0 / (fan_in as f64).sqrt(),
            Self::Xavier => (6.0 / (fan_in + cout) as f64).sqrt(),
        };
        candle_nn::Init::Uniform {
            lo: -bound,
            up: bound,
        }
    }
}
