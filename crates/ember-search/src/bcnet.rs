//! BCNet / BCNetV2's width bookkeeping (spec sections 2.2-2.4): every searchable layer's
//! maximum width is split into K bins; a width is a number of bins c; the left path runs the
//! first c bins and the right path the last c bins of the stored layer, so over all widths
//! every channel is used equally often (bilateral coupling). BCNetV2 restricts c to [m, K]
//! and stores N = K + m bins so that the restricted space stays exactly fair; plain BCNet is
//! m = 1 with N = K. Training alternates a random width vector with its complement N - c,
//! so that within each pair of steps the paths cover every channel.

use ember_core::{EmberError, EmberRng, Result};
use ember_models::layers::sliced::Slice;

/// The width variables of a supernet as bins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BinnedWidths {
    /// Each variable's largest sub-network width (channels).
    pub maxima: Vec<usize>,
    /// K: bins per maximum width.
    pub bins: usize,
    /// m: the fewest bins a width may have (1: every width; BCNetV2 uses more).
    pub min_bins: usize,
}

impl BinnedWidths {
    pub fn new(maxima: Vec<usize>, bins: usize, min_bins: usize) -> Result<Self> {
        if bins == 0 || min_bins == 0 || min_bins > bins {
            return Err(EmberError::bad_input(format!(
                "width bins: need 1 <= min bins ({min_bins}) <= bins ({bins})"
            )));
        }
        if let Some(m) = maxima.iter().find(|m| **m == 0 || **m % bins != 0) {
            return Err(EmberError::bad_input(format!(
                "width bins: a maximum width of {m} channels does not split into {bins} bins"
            )));
        }
        Ok(Self {
            maxima,
            bins,
            min_bins,
        })
    }

    pub fn variables(&self) -> usize {
        self.maxima.len()
    }

    /// N: bins each layer stores. BCNetV2 (m > 1) enlarges every layer by m bins so the
    /// last m are the right path's base, as the first m are the left path's.
    pub fn stored_bins(&self) -> usize {
        if self.min_bins > 1 {
            self.bins + self.min_bins
        } else {
            self.bins
        }
    }

    /// Channels of one bin of each variable.
    fn bin(&self, var: usize) -> usize {
        self.maxima[var] / self.bins
    }

    /// The channels each layer stores (the supernet's widths).
    pub fn stored(&self) -> Vec<usize> {
        (0..self.variables())
            .map(|v| self.bin(v) * self.stored_bins())
            .collect()
    }

    /// The allowed bin counts, `m..=K`.
    pub fn range(&self) -> (usize, usize) {
        (self.min_bins, self.bins)
    }

    fn check(&self, c: &[usize]) -> Result<()> {
        let (lo, hi) = self.range();
        if c.len() != self.variables() || c.iter().any(|&b| b < lo || b > hi) {
            return Err(EmberError::bad_input(format!(
                "a width vector has {} entries in {lo}..={hi} bins, got {c:?}",
                self.variables()
            )));
        }
        Ok(())
    }

    /// Channels of each variable for `c` bins each.
    pub fn channels(&self, c: &[usize]) -> Result<Vec<usize>> {
        self.check(c)?;
        Ok(c.iter()
            .enumerate()
            .map(|(v, &b)| b * self.bin(v))
            .collect())
    }

    /// The left path: the first c bins of every layer.
    pub fn left(&self, c: &[usize]) -> Result<Vec<Slice>> {
        Ok(self.channels(c)?.into_iter().map(Slice::left).collect())
    }

    /// The right path: the last c bins of every layer.
    pub fn right(&self, c: &[usize]) -> Result<Vec<Slice>> {
        let stored = self.stored();
        Ok(self
            .channels(c)?
            .into_iter()
            .zip(stored)
            .map(|(len, s)| Slice::right(s, len))
            .collect())
    }

    /// The complementary widths N - c (the paper's and BCNet's code; BCNetV2's code uses
    /// N - c - 1, which leaves a bin out). Plain BCNet's full width (c = N) has no
    /// complement inside the space: it stays at the narrowest width, m.
    pub fn complement(&self, c: &[usize]) -> Result<Vec<usize>> {
        self.check(c)?;
        let n = self.stored_bins();
        Ok(c.iter().map(|&b| (n - b).max(self.min_bins)).collect())
    }

    /// Every variable uniform over its allowed bin counts.
    pub fn sample(&self, rng: &mut EmberRng) -> Vec<usize> {
        let (lo, hi) = self.range();
        (0..self.variables())
            .map(|_| lo + rng.below(hi - lo + 1))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_channel_is_used_equally_often_over_all_widths() {
        // BCNetV2's exact fairness: N = K + m bins, c in [m, K], each bin in K - m + 1
        // paths; plain BC (m = 1): each bin in K + 1 paths.
        for (k, m) in [(4, 1), (8, 2), (20, 6)] {
            let w = BinnedWidths::new(vec![k * 3], k, m).unwrap();
            let stored = w.stored()[0];
            let mut uses = vec![0; stored];
            for c in m..=k {
                for path in [w.left(&[c]).unwrap(), w.right(&[c]).unwrap()] {
                    for u in &mut uses[path[0].start..path[0].end()] {
                        *u += 1;
                    }
                }
            }
            let expected = if m > 1 { k - m + 1 } else { k + 1 };
            assert!(uses.iter().all(|&u| u == expected), "K={k} m={m}: {uses:?}");
        }
    }

    #[test]
    fn a_width_and_its_complement_cover_every_channel_once_per_side() {
        let w = BinnedWidths::new(vec![16, 32], 8, 2).unwrap();
        assert_eq!(w.stored(), vec![20, 40]);
        let c = vec![3, 7];
        let comp = w.complement(&c).unwrap();
        assert_eq!(comp, vec![7, 3]);
        let (left, right_of_comp) = (w.left(&c).unwrap(), w.right(&comp).unwrap());
        for v in 0..2 {
            assert_eq!(left[v].end(), right_of_comp[v].start, "variable {v}");
            assert_eq!(right_of_comp[v].end(), w.stored()[v]);
        }
        // Plain BC: the full width's complement is the narrowest.
        let plain = BinnedWidths::new(vec![16], 4, 1).unwrap();
        assert_eq!(plain.complement(&[4]).unwrap(), vec![1]);
        assert_eq!(plain.complement(&[1]).unwrap(), vec![3]);
    }

    #[test]
    fn bad_bins_and_widths_are_refused() {
        assert!(BinnedWidths::new(vec![10], 4, 1).is_err());
        assert!(BinnedWidths::new(vec![16], 4, 5).is_err());
        let w = BinnedWidths::new(vec![16], 8, 2).unwrap();
        assert!(w.left(&[1]).is_err() && w.left(&[9]).is_err() && w.left(&[2, 2]).is_err());
        let mut rng = EmberRng::new(0);
        for _ in 0..100 {
            let c = w.sample(&mut rng);
            assert!((2..=8).contains(&c[0]));
        }
    }
}
