//! Analytic cost of a convolutional network, layer by layer, as Channel-Bench-Macro counts it:
//! multiply-accumulates of convolutions (`c_in * c_out * h_out * w_out * k^2 / groups`) and
//! linear layers (`in * out`); parameters of conv weights (no conv bias), two per BatchNorm
//! channel (gamma and beta; running statistics are buffers) and the linear weight and bias.
//! BN, activations, additions and pooling cost no MACs.

/// MACs and parameters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cost {
    pub macs: u64,
    pub params: u64,
}

impl std::ops::Add for Cost {
    type Output = Cost;
    fn add(self, o: Cost) -> Cost {
        Cost {
            macs: self.macs + o.macs,
            params: self.params + o.params,
        }
    }
}

/// Walks a network forward, tracking the feature map's side and summing the cost.
#[derive(Debug, Clone)]
pub struct Counter {
    /// Side of the current (square) feature map.
    side: usize,
    cost: Cost,
}

impl Counter {
    /// A network on `side x side` inputs.
    pub fn new(side: usize) -> Self {
        Self {
            side,
            cost: Cost::default(),
        }
    }

    /// A `k x k` convolution with "same" padding (`k / 2`), no bias.
    pub fn conv(&mut self, c_in: usize, c_out: usize, k: usize, stride: usize, groups: usize) {
        let pad = k / 2;
        self.side = (self.side + 2 * pad - k) / stride + 1;
        let weights = (c_in * c_out * k * k / groups) as u64;
        self.cost.params += weights;
        self.cost.macs += weights * (self.side * self.side) as u64;
    }

    /// BatchNorm's affine parameters.
    pub fn bn(&mut self, channels: usize) {
        self.cost.params += 2 * channels as u64;
    }

    /// Squeeze-excite on `c` channels: two 1x1 convs with bias on the pooled vector
    /// (`c -> squeeze -> c`).
    pub fn squeeze_excite(&mut self, c: usize, squeeze: usize) {
        self.cost.macs += 2 * (c * squeeze) as u64;
        self.cost.params += (2 * c * squeeze + squeeze + c) as u64;
    }

    /// A linear layer with bias (after global pooling).
    pub fn linear(&mut self, inputs: usize, outputs: usize) {
        self.cost.macs += (inputs * outputs) as u64;
        self.cost.params += (inputs * outputs + outputs) as u64;
    }

    pub fn side(&self) -> usize {
        self.side
    }

    pub fn total(&self) -> Cost {
        self.cost
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn convolutions_count_output_pixels_and_groups() {
        let mut c = Counter::new(32);
        c.conv(3, 8, 3, 2, 1);
        assert_eq!(c.side(), 16);
        assert_eq!(c.total().macs, 3 * 8 * 9 * 16 * 16);
        c.conv(8, 8, 3, 1, 8); // depthwise
        c.bn(8);
        c.linear(8, 10);
        assert_eq!(
            c.total(),
            Cost {
                macs: 3 * 8 * 9 * 256 + 8 * 9 * 256 + 80,
                params: 3 * 8 * 9 + 8 * 9 + 16 + 90,
            }
        );
    }
}
