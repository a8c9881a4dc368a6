//! BCNet's prior over widths (spec section 2.6): from the supernet's lowest training losses
//! and the width vectors that had them, a per-layer distribution over bin counts that
//! prefers widths with low recorded losses while its expected FLOPs meet the budget. The
//! evolution draws its initial population and its mutations from it.
//!
//! Per layer l and bin count c, `E[l][c]` is the mean recorded loss over records where layer
//! l had c bins (10 where it never had). With `p_l = softmax(theta_l)` the objective is
//! `mean_l sum_c p_l(c) E[l][c] + lambda (1 - F(p) / F_t)^2`, minimised by plain gradient
//! descent (lambda 1000, lr 0.01, 2000 steps, theta from N(0, 1)). The official code
//! approximates F(p) with neighbouring layers; here it is exact: a network's MACs are
//! multilinear in its width variables (every term is one width, or a product of two
//! different ones), so for independent layers E[MACs] is the MACs at the expected widths,
//! evaluated by multilinear interpolation between the networks with 1 and 2 channels per
//! variable.

use ember_core::EmberRng;

use crate::evolution::GeneSampler;

/// The loss of a width never recorded (the official sentinel).
const UNSEEN: f64 = 10.0;

#[derive(Debug, Clone, PartialEq)]
pub struct PriorSettings {
    pub lambda: f64,
    pub lr: f64,
    pub steps: usize,
}

impl Default for PriorSettings {
    fn default() -> Self {
        Self {
            lambda: 1000.0,
            lr: 0.01,
            steps: 2000,
        }
    }
}

/// Expected MACs of independent width variables.
pub struct ExpectedMacs {
    /// MACs of every corner of {1, 2}^V, corner bit i set = variable i at 2 channels.
    corners: Vec<f64>,
}

impl ExpectedMacs {
    /// `macs(widths)` counts a network with these channels per variable.
    pub fn new(variables: usize, macs: impl Fn(&[usize]) -> f64) -> Self {
        let corners = (0..1usize << variables)
            .map(|bits| {
                let w: Vec<usize> = (0..variables).map(|i| 1 + (bits >> i & 1)).collect();
                macs(&w)
            })
            .collect();
        Self { corners }
    }

    fn variables(&self) -> usize {
        self.corners.len().trailing_zeros() as usize
    }

    /// MACs at real-valued widths `mu` and the gradient with respect to each.
    pub fn at(&self, mu: &[f64]) -> (f64, Vec<f64>) {
        let v = self.variables();
        let (mut value, mut grad) = (0.0, vec![0.0; v]);
        for (bits, &f) in self.corners.iter().enumerate() {
            // Weight of this corner: (mu - 1) where the bit is set, (2 - mu) where not.
            let factor = |i: usize| {
                if bits >> i & 1 == 1 {
                    mu[i] - 1.0
                } else {
                    2.0 - mu[i]
                }
            };
            let all: f64 = (0..v).map(factor).product();
            value += f * all;
            for (i, g) in grad.iter_mut().enumerate() {
                let others: f64 = (0..v).filter(|&j| j != i).map(factor).product();
                let sign = if bits >> i & 1 == 1 { 1.0 } else { -1.0 };
                *g += f * sign * others;
            }
        }
        (value, grad)
    }
}

/// Per-variable distributions over bin counts.
#[derive(Debug, Clone, PartialEq)]
pub struct Prior {
    /// The bin counts each variable may take (the same for all).
    pub bins: Vec<usize>,
    /// `probs[l][k]`: probability that variable l takes `bins[k]`.
    pub probs: Vec<Vec<f64>>,
}

impl Prior {
    /// Fits the prior. `records` are (loss, bins per variable); `channels(l, c)` is variable
    /// l's channel count at c bins; `target` is F_t.
    #[allow(clippy::too_many_arguments)]
    pub fn fit(
        records: &[(f64, Vec<usize>)],
        bins: &[usize],
        variables: usize,
        channels: impl Fn(usize, usize) -> f64,
        macs: &ExpectedMacs,
        target: f64,
        settings: &PriorSettings,
        seed: u64,
    ) -> Self {
        let k = bins.len();
        let quality: Vec<Vec<f64>> = (0..variables)
            .map(|l| {
                bins.iter()
                    .map(|&c| {
                        let seen: Vec<f64> = records
                            .iter()
                            .filter(|(_, w)| w[l] == c)
                            .map(|(loss, _)| *loss)
                            .collect();
                        if seen.is_empty() {
                            UNSEEN
                        } else {
                            seen.iter().sum::<f64>() / seen.len() as f64
                        }
                    })
                    .collect()
            })
            .collect();
        let ch: Vec<Vec<f64>> = (0..variables)
            .map(|l| bins.iter().map(|&c| channels(l, c)).collect())
            .collect();
        let mut rng = EmberRng::for_name(seed, "bcnet/prior");
        let mut theta: Vec<Vec<f64>> = (0..variables)
            .map(|_| (0..k).map(|_| rng.normal(0.0, 1.0)).collect())
            .collect();
        for _ in 0..settings.steps {
            let p: Vec<Vec<f64>> = theta.iter().map(|t| softmax(t)).collect();
            let mu: Vec<f64> = (0..variables)
                .map(|l| (0..k).map(|j| p[l][j] * ch[l][j]).sum())
                .collect();
            let (f, df) = macs.at(&mu);
            let miss = 1.0 - f / target;
            for l in 0..variables {
                // d/dp_l(c): the loss term's, and the budget term's through mu_l.
                let g: Vec<f64> = (0..k)
                    .map(|j| {
                        quality[l][j] / variables as f64
                            + settings.lambda * 2.0 * miss * (-df[l] / target) * ch[l][j]
                    })
                    .collect();
                let mean: f64 = (0..k).map(|j| p[l][j] * g[j]).sum();
                for j in 0..k {
                    theta[l][j] -= settings.lr * p[l][j] * (g[j] - mean);
                }
            }
        }
        Self {
            bins: bins.to_vec(),
            probs: theta.iter().map(|t| softmax(t)).collect(),
        }
    }
}

fn softmax(t: &[f64]) -> Vec<f64> {
    let m = t.iter().copied().fold(f64::MIN, f64::max);
    let e: Vec<f64> = t.iter().map(|x| (x - m).exp()).collect();
    let s: f64 = e.iter().sum();
    e.iter().map(|x| x / s).collect()
}

impl GeneSampler for Prior {
    fn draw(&self, gene: usize, rng: &mut EmberRng) -> usize {
        let u = rng.uniform(0.0, 1.0);
        let mut acc = 0.0;
        for (k, &p) in self.probs[gene].iter().enumerate() {
            acc += p;
            if u < acc {
                return self.bins[k];
            }
        }
        *self.bins.last().expect("at least one bin count")
    }

    fn genes(&self) -> usize {
        self.probs.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A chain of 1x1 convs over 3 variables plus a linear layer: multilinear MACs.
    fn macs(w: &[usize]) -> f64 {
        (3 * w[0] + w[0] * w[1] + w[1] * w[2] + 10 * w[2]) as f64
    }

    #[test]
    fn expected_macs_are_exact_and_their_gradient_too() {
        let e = ExpectedMacs::new(3, macs);
        let mu = [2.5, 7.25, 4.0];
        let (f, g) = e.at(&mu);
        let direct = 3.0 * mu[0] + mu[0] * mu[1] + mu[1] * mu[2] + 10.0 * mu[2];
        assert!((f - direct).abs() < 1e-9, "{f} vs {direct}");
        let expected = [3.0 + mu[1], mu[0] + mu[2], mu[1] + 10.0];
        for i in 0..3 {
            assert!(
                (g[i] - expected[i]).abs() < 1e-9,
                "d{i}: {} vs {}",
                g[i],
                expected[i]
            );
        }
    }

    #[test]
    fn the_prior_prefers_low_losses_and_meets_the_budget() {
        let bins: Vec<usize> = (1..=4).collect();
        let channels = |_: usize, c: usize| (c * 4) as f64;
        // Variable 0 trains best at 2 bins, the others show no preference.
        let records: Vec<(f64, Vec<usize>)> = (1..=4)
            .flat_map(|c| (1..=4).map(move |d| (if c == 2 { 0.5 } else { 1.5 }, vec![c, d, d])))
            .collect();
        let e = ExpectedMacs::new(3, macs);
        let full = macs(&[16, 16, 16]);
        let prior = Prior::fit(
            &records,
            &bins,
            3,
            channels,
            &e,
            0.5 * full,
            &PriorSettings::default(),
            0,
        );
        let best0 = (0..4)
            .max_by(|&a, &b| prior.probs[0][a].total_cmp(&prior.probs[0][b]))
            .unwrap();
        assert_eq!(bins[best0], 2, "{:?}", prior.probs[0]);
        let mu: Vec<f64> = (0..3)
            .map(|l| {
                (0..4)
                    .map(|j| prior.probs[l][j] * channels(l, bins[j]))
                    .sum()
            })
            .collect();
        let (f, _) = e.at(&mu);
        assert!(
            (f / (0.5 * full) - 1.0).abs() < 0.05,
            "expected MACs {f} vs {}",
            0.5 * full
        );
        let mut rng = EmberRng::new(0);
        assert!((0..200).all(|_| bins.contains(&prior.draw(1, &mut rng))));
    }
}
