//! One decoded image in channel-major layout, values in [0, 1] before normalisation.

/// A `[channels, height, width]` image of f32 values.
#[derive(Debug, Clone, PartialEq)]
pub struct Chw {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub data: Vec<f32>,
}

impl Chw {
    pub fn zeros(channels: usize, height: usize, width: usize) -> Self {
        Self {
            channels,
            height,
            width,
            data: vec![0.0; channels * height * width],
        }
    }

    /// From bytes in `[c, h, w]` order, scaled to [0, 1] as torchvision's `ToTensor`.
    pub fn from_u8(channels: usize, height: usize, width: usize, bytes: &[u8]) -> Self {
        debug_assert_eq!(bytes.len(), channels * height * width);
        let data = bytes.iter().map(|&b| b as f32 / 255.0).collect();
        Self {
            channels,
            height,
            width,
            data,
        }
    }

    pub fn dims(&self) -> [usize; 3] {
        [self.channels, self.height, self.width]
    }

    pub fn plane(&self, c: usize) -> &[f32] {
        let n = self.height * self.width;
        &self.data[c * n..(c + 1) * n]
    }
}
