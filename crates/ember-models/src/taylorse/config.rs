//! TaylorSENet's constructor arguments as a JSON-able config (the official names), with the
//! checks the official code leaves to a crash inside `torch.cat`.

use ember_core::{EmberError, Result};
use serde::{Deserialize, Serialize};

/// How a skip joins the running feature: concatenated after it, or added.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Connect {
    Cat,
    Add,
}

impl Connect {
    /// The input width of a layer fed `c` channels joined with a `c`-channel skip.
    pub fn widened(self, c: usize) -> usize {
        match self {
            Self::Cat => 2 * c,
            Self::Add => c,
        }
    }
}

/// `TaylorSENet(...)`'s arguments. Defaults are the official training configuration
/// (`configs/train_config.toml`), not the constructor's (which has inter_connect "add").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TaylorSeConfig {
    /// Input channels of the complex encoder (real, imaginary); the magnitude encoder gets cin / 2.
    pub cin: usize,
    /// (time, freq) kernel of the gated (de)convs that change resolution.
    pub k1: [usize; 2],
    /// (time, freq) kernel of the inner U-Net convs of every REL/RDL.
    pub k2: [usize; 2],
    /// Channels inside the U^2 encoders and decoder.
    pub c: usize,
    /// Kernel of the dilated convs in a squeezed TCN unit.
    pub kd1: usize,
    /// Bottleneck channels of a squeezed TCN unit.
    pub cd1: usize,
    /// Width of the sequence features: 64 x (frequency bins after the encoder).
    pub d_feat: usize,
    /// One squeezed TCN unit per dilation in a group.
    pub dilations: Vec<usize>,
    /// TCN groups chained in the 0th-order block and in every derivative operator.
    pub p: usize,
    /// FFT size of the front end (bins = fft_num / 2 + 1).
    pub fft_num: usize,
    /// Number of high-order Taylor terms (0: the 0th-order filter alone).
    pub order_num: usize,
    pub intra_connect: Connect,
    pub inter_connect: Connect,
    /// Only "IN" (the official choice: instance norm with eps = 1, no affine) is implemented.
    pub norm_type: String,
    pub is_causal: bool,
    /// Nested U^2 encoder/decoder (official) or a plain five-layer U-Net.
    pub is_u2: bool,
    /// One derivative operator reused for every order.
    pub is_param_share: bool,
    /// High orders read the 0th-order encoder's feature instead of their own complex encoder.
    pub is_encoder_share: bool,
}

impl Default for TaylorSeConfig {
    fn default() -> Self {
        Self {
            cin: 2,
            k1: [1, 3],
            k2: [2, 3],
            c: 64,
            kd1: 5,
            cd1: 64,
            d_feat: 256,
            dilations: vec![1, 2, 5, 9],
            p: 2,
            fft_num: 320,
            order_num: 3,
            intra_connect: Connect::Cat,
            inter_connect: Connect::Cat,
            norm_type: "IN".into(),
            is_causal: true,
            is_u2: true,
            is_param_share: false,
            is_encoder_share: false,
        }
    }
}

/// Channels of the encoder's last layer and of the decoder's first input (hard-wired
/// officially), and of the decoder's last gated deconv.
pub const ENCODER_OUT: usize = 64;
pub const DECODER_END: usize = 16;
/// Kernel of the first encoder layer and the last decoder layer (hard-wired officially).
pub const OUTER_KERNEL: [usize; 2] = [1, 5];

impl TaylorSeConfig {
    /// The official model (5,401,351 parameters).
    pub fn official() -> Self {
        Self::default()
    }

    /// A small model that trains on 2 CPU cores in minutes (spec section 12's advice): the
    /// official structure with narrow channels, one TCN group of four units, the official three orders.
    pub fn small() -> Self {
        Self {
            c: 12,
            cd1: 24,
            p: 1,
            dilations: vec![1, 2, 4, 8],
            ..Self::default()
        }
    }

    /// A named preset: `official` or `small`.
    pub fn preset(name: &str) -> Result<Self> {
        match name {
            "official" => Ok(Self::official()),
            "small" => Ok(Self::small()),
            _ => Err(EmberError::bad_input(format!(
                "unknown TaylorSENet preset `{name}` (official, small)"
            ))),
        }
    }

    pub fn bins(&self) -> usize {
        self.fft_num / 2 + 1
    }

    /// Frequency bins after each of the five stride-2 encoder layers.
    pub fn encoder_bins(&self) -> [usize; 5] {
        let down = |f: usize, k: usize| (f.saturating_sub(k)) / 2 + 1;
        let mut out = [0; 5];
        let mut f = down(self.bins(), OUTER_KERNEL[1]);
        out[0] = f;
        for slot in out.iter_mut().skip(1) {
            f = down(f, self.k1[1]);
            *slot = f;
        }
        out
    }

    /// Refuses what the official code would crash on (or what we do not implement), in one line.
    pub fn validate(&self) -> Result<()> {
        let bad = |msg: String| Err(EmberError::bad_input(format!("TaylorSENet config: {msg}")));
        if self.norm_type != "IN" {
            return bad(format!(
                "norm_type `{}` is not implemented (only the official \"IN\")",
                self.norm_type
            ));
        }
        if self.cin == 0 || !self.cin.is_multiple_of(2) {
            return bad(format!(
                "cin must be even (real and imaginary channels), got {}",
                self.cin
            ));
        }
        if self.k1.contains(&0) || self.k2.contains(&0) || self.kd1 == 0 {
            return bad("kernel sizes must be positive".into());
        }
        if self.c == 0 || self.cd1 == 0 || self.dilations.contains(&0) {
            return bad("widths and dilations must be positive".into());
        }
        if self.inter_connect == Connect::Add && self.c != ENCODER_OUT {
            return bad(format!(
                "inter_connect \"add\" adds {ENCODER_OUT}-channel skips: c must be {ENCODER_OUT}"
            ));
        }
        // The transposed convs invert the encoder only when every upsampled size is odd and
        // reproduces its skip: F -> (F - k) / 2 + 1 -> 2 (F' - 1) + k.
        let mut f = self.bins();
        for (i, (&next, k)) in self
            .encoder_bins()
            .iter()
            .zip([
                OUTER_KERNEL[1],
                self.k1[1],
                self.k1[1],
                self.k1[1],
                self.k1[1],
            ])
            .enumerate()
        {
            if f < k || 2 * (next - 1) + k != f {
                return bad(format!(
                    "fft_num {} gives {} bins, which encoder layer {i} (kernel {k}, stride 2) cannot halve and restore exactly (use fft_num = 64 k, e.g. 128, 256, 320, 512)",
                    self.fft_num,
                    self.bins()
                ));
            }
            f = next;
        }
        if self.is_u2 {
            // Each REL's inner U-Net halves its width `scale` times with k2 and restores it.
            for (layer, (&out, scale)) in self
                .encoder_bins()
                .iter()
                .zip([4usize, 3, 2, 1])
                .enumerate()
            {
                let mut g = out;
                for _ in 0..scale {
                    let h = (g.saturating_sub(self.k2[1])) / 2 + 1;
                    if g < self.k2[1] || 2 * (h - 1) + self.k2[1] != g {
                        return bad(format!(
                            "the inner U-Net of encoder layer {layer} ({out} bins) cannot halve and restore {g} bins with k2 = {:?}",
                            self.k2
                        ));
                    }
                    g = h;
                }
            }
        }
        let want = ENCODER_OUT * self.encoder_bins()[4];
        if self.d_feat != want {
            return bad(format!(
                "d_feat must be {ENCODER_OUT} x {} encoder bins = {want} for fft_num {}, got {}",
                self.encoder_bins()[4],
                self.fft_num,
                self.d_feat
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_official_sizes_check_out() {
        let c = TaylorSeConfig::official();
        assert_eq!(c.encoder_bins(), [79, 39, 19, 9, 4]);
        c.validate().unwrap();
        TaylorSeConfig::small().validate().unwrap();
        let c512 = TaylorSeConfig {
            fft_num: 512,
            d_feat: 448,
            ..c.clone()
        };
        c512.validate().unwrap();
    }

    #[test]
    fn impossible_configs_are_refused_in_one_line() {
        let c = TaylorSeConfig::official();
        let msg = TaylorSeConfig {
            fft_num: 300,
            ..c.clone()
        }
        .validate()
        .unwrap_err()
        .to_string();
        assert!(msg.contains("fft_num 300"), "{msg}");
        let msg = TaylorSeConfig {
            d_feat: 128,
            ..c.clone()
        }
        .validate()
        .unwrap_err()
        .to_string();
        assert!(msg.contains("d_feat must be 64 x 4"), "{msg}");
        assert!(TaylorSeConfig {
            norm_type: "BN".into(),
            ..c.clone()
        }
        .validate()
        .is_err());
        let json = serde_json::json!({"c": 8, "typo": 1});
        assert!(serde_json::from_value::<TaylorSeConfig>(json).is_err());
    }
}
