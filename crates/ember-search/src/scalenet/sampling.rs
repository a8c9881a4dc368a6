//! Drawing ScaleNet sub-networks (the official `core/searcher/uniform_searcher.py` and the
//! search's `get_init_basenet`).
//!
//! Super-supernet training draws hierarchically: the scaling stage first, with probability
//! proportional to its number of width multipliers (1:4:5:7 officially, so every width
//! multiplier is equally likely), then depth, width and resolution multipliers of that same
//! stage (never mixed across stages), then the base: an op per slot uniform over the
//! kernels and a depth per stage uniform over 1..=n, the added depth repeating the last
//! base op. There is no FLOPs rejection in training.

use ember_core::EmberRng;
use ember_models::scalenet::{Space, Subnet};

/// A random base model: a depth per stage uniform in `1..=layers`, an op per present slot
/// uniform over the kernels.
pub fn random_base(space: &Space, rng: &mut EmberRng) -> Vec<Vec<usize>> {
    space
        .stages
        .iter()
        .zip(space.slots())
        .map(|(spec, n)| {
            let depth = 1 + rng.below(spec.layers);
            (0..n)
                .map(|j| {
                    if j < depth {
                        1 + rng.below(space.kernels.len())
                    } else {
                        0
                    }
                })
                .collect()
        })
        .collect()
}

/// The scaling stage of a training draw: `s` with probability `|W_s| / sum |W|`.
pub fn sample_stage(space: &Space, rng: &mut EmberRng) -> usize {
    let counts: Vec<usize> = space.scaling.iter().map(|s| s.width.len()).collect();
    let mut pick = rng.below(counts.iter().sum());
    for (s, &c) in counts.iter().enumerate() {
        if pick < c {
            return s;
        }
        pick -= c;
    }
    unreachable!("pick is below the total")
}

/// One training draw: its scaling stage and the sub-network.
pub fn sample_subnet(space: &Space, rng: &mut EmberRng) -> (usize, Subnet) {
    let s = sample_stage(space, rng);
    let st = &space.scaling[s];
    let strategy = [
        rng.below(st.depth.len()),
        rng.below(st.width.len()),
        rng.below(st.resolution.len()),
    ];
    let base = random_base(space, rng);
    (s, space.scale_stage(&base, s, strategy))
}

/// A random base whose MACs (by `macs`) lie within `error` of `target`, by rejection as
/// the official search's initial population; `None` after `tries` draws.
pub fn base_within(
    space: &Space,
    rng: &mut EmberRng,
    macs: &dyn Fn(&Subnet) -> f64,
    target: f64,
    error: f64,
    tries: usize,
) -> Option<Vec<Vec<usize>>> {
    (0..tries)
        .map(|_| random_base(space, rng))
        .find(|b| (macs(&space.base_subnet(b)) - target).abs() <= error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ember_models::scalenet::flops::search_macs;

    /// Pearson's chi-square statistic of observed counts against expected probabilities.
    fn chi_square(observed: &[usize], expected: &[f64]) -> f64 {
        let n: usize = observed.iter().sum();
        observed
            .iter()
            .zip(expected)
            .map(|(&o, &p)| {
                let e = p * n as f64;
                (o as f64 - e).powi(2) / e
            })
            .sum()
    }

    #[test]
    fn draws_follow_the_hierarchical_scheme() {
        let space = Space::imagenet();
        let mut rng = EmberRng::new(3);
        let draws = 20_000;
        let mut stages = [0usize; 4];
        let mut widths = std::collections::HashMap::<u64, usize>::new();
        let mut depth_counts = [0usize; 4];
        let mut kernels = [0usize; 3];
        for _ in 0..draws {
            let (s, sub) = sample_subnet(&space, &mut rng);
            stages[s] += 1;
            *widths.entry(sub.width.to_bits()).or_default() += 1;
            // Multipliers of one stage only.
            let st = &space.scaling[s];
            assert!(st.width.contains(&sub.width) && st.resolution.contains(&sub.resolution));
            // Stage 2 of the space (up to 4 base layers): the base depth, read back from a
            // stage-0 draw where nothing is added.
            if s == 0 {
                depth_counts[space.depths(&sub.ops)[1] - 1] += 1;
            }
            kernels[sub.ops[3][0] - 1] += 1;
        }
        // 3 degrees of freedom: the 0.1% critical value is 16.27; 2 dof: 13.82.
        let stage_p = [1.0 / 17.0, 4.0 / 17.0, 5.0 / 17.0, 7.0 / 17.0];
        assert!(chi_square(&stages, &stage_p) < 16.27, "{stages:?}");
        assert!(
            chi_square(&depth_counts, &[0.25; 4]) < 16.27,
            "{depth_counts:?}"
        );
        assert!(chi_square(&kernels, &[1.0 / 3.0; 3]) < 13.82, "{kernels:?}");
        // Every one of the 17 width multipliers about equally likely (16 dof: 39.25).
        let counts: Vec<usize> = widths.values().copied().collect();
        assert_eq!(counts.len(), 17);
        assert!(chi_square(&counts, &[1.0 / 17.0; 17]) < 39.25, "{counts:?}");
    }

    #[test]
    fn a_base_within_the_window_lies_in_it() {
        let space = Space::imagenet();
        let macs = |s: &Subnet| search_macs(&space, s) as f64;
        let mut rng = EmberRng::new(0);
        for _ in 0..20 {
            let b = base_within(&space, &mut rng, &macs, 306e6, 25e6, 10_000).unwrap();
            assert!(space.is_base(&b));
            assert!((macs(&space.base_subnet(&b)) - 306e6).abs() <= 25e6);
        }
    }
}

#[cfg(test)]
mod tiers {
    use super::*;

    #[test]
    fn stage_s_draws_scale_their_base_by_about_two_to_the_s() {
        for space in [Space::imagenet(), Space::fashion()] {
            let mut rng = EmberRng::new(11);
            let mut ratios: Vec<Vec<f64>> = vec![Vec::new(); space.scaling.len()];
            for _ in 0..3000 {
                let s = sample_stage(&space, &mut rng);
                let st = &space.scaling[s];
                let t = [
                    rng.below(st.depth.len()),
                    rng.below(st.width.len()),
                    rng.below(st.resolution.len()),
                ];
                let base = random_base(&space, &mut rng);
                let m = |sub: &Subnet| space.plan(sub).cost().macs as f64;
                ratios[s].push(m(&space.scale_stage(&base, s, t)) / m(&space.base_subnet(&base)));
            }
            for (s, r) in ratios.iter_mut().enumerate() {
                r.sort_by(f64::total_cmp);
                let median = r[r.len() / 2];
                let want = (1u64 << s) as f64;
                assert!(
                    (0.75 * want..1.33 * want).contains(&median),
                    "stage {s}: median {median}"
                );
            }
        }
    }
}
