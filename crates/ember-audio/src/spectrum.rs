//! A complex spectrogram in the layout the speech models take: (2, T, F), all real parts
//! first, then all imaginary parts, each frame-major. Power-law compression lives here
//! because TaylorSENet applies it outside the network (spec section 2).

/// `frames` x `bins` complex values; `data` is [re(T, F), im(T, F)].
#[derive(Debug, Clone, PartialEq)]
pub struct Spectrum {
    pub frames: usize,
    pub bins: usize,
    pub data: Vec<f32>,
}

impl Spectrum {
    pub fn zeros(frames: usize, bins: usize) -> Self {
        Self {
            frames,
            bins,
            data: vec![0.0; 2 * frames * bins],
        }
    }

    /// Wraps a (2, T, F) buffer, e.g. one utterance of a model's output.
    pub fn from_channels(frames: usize, bins: usize, data: Vec<f32>) -> Self {
        assert_eq!(
            data.len(),
            2 * frames * bins,
            "a spectrum is (2, {frames}, {bins})"
        );
        Self { frames, bins, data }
    }

    pub fn re(&self) -> &[f32] {
        &self.data[..self.frames * self.bins]
    }

    pub fn im(&self) -> &[f32] {
        &self.data[self.frames * self.bins..]
    }

    pub fn parts_mut(&mut self) -> (&mut [f32], &mut [f32]) {
        self.data.split_at_mut(self.frames * self.bins)
    }

    /// |X| per (frame, bin).
    pub fn magnitude(&self) -> Vec<f32> {
        self.re()
            .iter()
            .zip(self.im())
            .map(|(r, i)| r.hypot(*i))
            .collect()
    }

    /// |X|^power with the phase kept: the front end's compression (power 0.5) and, with
    /// 1 / power, its inverse. Written as X * |X|^(power - 1), which equals the official
    /// |X|^power * (cos, sin)(atan2(im, re)) up to rounding without the trigonometry; a zero
    /// bin stays zero, as atan2(0, 0) = 0 makes it there.
    pub fn powered(&self, power: f32) -> Self {
        let mut out = self.clone();
        let (re, im) = out.parts_mut();
        for (r, i) in re.iter_mut().zip(im.iter_mut()) {
            let mag = r.hypot(*i);
            let scale = if mag > 0.0 {
                mag.powf(power - 1.0)
            } else {
                0.0
            };
            *r *= scale;
            *i *= scale;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compression_keeps_the_phase_and_inverts() {
        let x = Spectrum::from_channels(1, 3, vec![3.0, 0.0, -1.0, 4.0, 0.0, 0.0]);
        let c = x.powered(0.5);
        // |3 + 4i| = 5 -> sqrt(5) with the same direction.
        assert!((c.re()[0] - 3.0 / 5f32.sqrt()).abs() < 1e-6);
        assert!((c.im()[0] - 4.0 / 5f32.sqrt()).abs() < 1e-6);
        assert_eq!((c.re()[1], c.im()[1]), (0.0, 0.0));
        assert!((c.re()[2] + 1.0).abs() < 1e-6);
        let back = c.powered(2.0);
        for (a, b) in back.data.iter().zip(&x.data) {
            assert!((a - b).abs() < 1e-5);
        }
    }
}
