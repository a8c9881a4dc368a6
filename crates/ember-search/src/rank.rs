//! Rank agreement between an estimator's scores and ground truth: Kendall's tau-b (ties in
//! either variable handled, in O(n log n) by Knight's algorithm, as scipy's `kendalltau`),
//! Spearman's rho (Pearson on tie-averaged ranks, as scipy's `spearmanr`) and Pearson's r.
//! Written here because no maintained Rust crate offers tau-b with ties at this speed.

/// Kendall's tau-b of `x` and `y` (same length, at least two values; NaN when either is
/// constant).
pub fn kendall_tau_b(x: &[f64], y: &[f64]) -> f64 {
    assert_eq!(x.len(), y.len(), "kendall_tau_b: lengths differ");
    let n = x.len();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&i, &j| x[i].total_cmp(&x[j]).then(y[i].total_cmp(&y[j])));
    let xs: Vec<f64> = order.iter().map(|&i| x[i]).collect();
    let mut ys: Vec<f64> = order.iter().map(|&i| y[i]).collect();
    let tied_x = tied_pairs(&xs, |a, b| a == b);
    let pairs: Vec<(f64, f64)> = xs.iter().copied().zip(ys.iter().copied()).collect();
    let tied_xy = tied_pairs(&pairs, |a, b| a == b);
    // Pairs ordered by x whose y is strictly inverted: the discordant pairs.
    let mut scratch = vec![0.0; n];
    let discordant = inversions(&mut ys, &mut scratch);
    let tied_y = tied_pairs(&ys, |a, b| a == b);
    let total = (n * (n.saturating_sub(1)) / 2) as f64;
    let (n1, n2, n3) = (tied_x as f64, tied_y as f64, tied_xy as f64);
    let concordant_minus_discordant = total - n1 - n2 + n3 - 2.0 * discordant as f64;
    concordant_minus_discordant / ((total - n1) * (total - n2)).sqrt()
}

/// Pairs of neighbours-in-runs that are equal: sum of t(t-1)/2 over runs of equal values
/// in a sorted slice.
fn tied_pairs<T>(sorted: &[T], eq: impl Fn(&T, &T) -> bool) -> u64 {
    let mut total = 0u64;
    let mut run = 1u64;
    for i in 1..=sorted.len() {
        if i < sorted.len() && eq(&sorted[i], &sorted[i - 1]) {
            run += 1;
        } else {
            total += run * (run - 1) / 2;
            run = 1;
        }
    }
    total
}

/// Sorts `v` (merge sort) and returns how many pairs i < j had v[i] > v[j].
fn inversions(v: &mut [f64], scratch: &mut [f64]) -> u64 {
    let n = v.len();
    if n < 2 {
        return 0;
    }
    let mid = n / 2;
    let mut count = {
        let (left, right) = v.split_at_mut(mid);
        let (sl, sr) = scratch.split_at_mut(mid);
        inversions(left, sl) + inversions(right, sr)
    };
    let (mut i, mut j, mut k) = (0, mid, 0);
    while i < mid && j < n {
        if v[j] < v[i] {
            scratch[k] = v[j];
            count += (mid - i) as u64;
            j += 1;
        } else {
            scratch[k] = v[i];
            i += 1;
        }
        k += 1;
    }
    scratch[k..k + mid - i].copy_from_slice(&v[i..mid]);
    k += mid - i;
    scratch[k..k + n - j].copy_from_slice(&v[j..n]);
    v.copy_from_slice(&scratch[..n]);
    count
}

/// 1-based ranks, tied values sharing the mean of their ranks.
pub fn average_ranks(v: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..v.len()).collect();
    order.sort_by(|&i, &j| v[i].total_cmp(&v[j]));
    let mut ranks = vec![0.0; v.len()];
    let mut start = 0;
    while start < order.len() {
        let mut end = start;
        while end + 1 < order.len() && v[order[end + 1]] == v[order[start]] {
            end += 1;
        }
        let rank = (start + end) as f64 / 2.0 + 1.0;
        for &i in &order[start..=end] {
            ranks[i] = rank;
        }
        start = end + 1;
    }
    ranks
}

pub fn pearson(x: &[f64], y: &[f64]) -> f64 {
    assert_eq!(x.len(), y.len(), "pearson: lengths differ");
    let n = x.len() as f64;
    let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        let (dx, dy) = (a - mx, b - my);
        sxy += dx * dy;
        sxx += dx * dx;
        syy += dy * dy;
    }
    sxy / (sxx * syy).sqrt()
}

pub fn spearman(x: &[f64], y: &[f64]) -> f64 {
    pearson(&average_ranks(x), &average_ranks(y))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The O(n^2) definition, for comparison.
    fn tau_b_by_pairs(x: &[f64], y: &[f64]) -> f64 {
        let (mut s, mut tx, mut ty, mut n0) = (0.0, 0.0, 0.0, 0.0);
        for i in 0..x.len() {
            for j in i + 1..x.len() {
                let (dx, dy) = (x[i] - x[j], y[i] - y[j]);
                n0 += 1.0;
                s += (dx.signum() * dy.signum()) * ((dx != 0.0 && dy != 0.0) as u8 as f64);
                tx += (dx == 0.0) as u8 as f64;
                ty += (dy == 0.0) as u8 as f64;
            }
        }
        s / ((n0 - tx) * (n0 - ty)).sqrt()
    }

    #[test]
    fn tau_b_matches_its_pairwise_definition_with_ties() {
        let mut rng = ember_core::EmberRng::new(3);
        for n in [2, 3, 10, 57, 200] {
            let x: Vec<f64> = (0..n).map(|_| rng.below(7) as f64).collect();
            let y: Vec<f64> = (0..n)
                .map(|i| (x[i] + rng.below(4) as f64).round())
                .collect();
            let (fast, slow) = (kendall_tau_b(&x, &y), tau_b_by_pairs(&x, &y));
            assert!((fast - slow).abs() < 1e-12, "n={n}: {fast} vs {slow}");
        }
        assert_eq!(kendall_tau_b(&[1.0, 2.0, 3.0], &[3.0, 2.0, 1.0]), -1.0);
    }

    #[test]
    fn spearman_uses_average_ranks() {
        assert_eq!(
            average_ranks(&[10.0, 20.0, 10.0, 5.0]),
            vec![2.5, 4.0, 2.5, 1.0]
        );
        assert!((spearman(&[1.0, 2.0, 3.0], &[1.0, 4.0, 9.0]) - 1.0).abs() < 1e-12);
        // scipy.stats.spearmanr([1, 2, 2, 3], [1, 3, 2, 4]) = 0.9486832980505138
        let rho = spearman(&[1.0, 2.0, 2.0, 3.0], &[1.0, 3.0, 2.0, 4.0]);
        assert!((rho - 0.9486832980505138).abs() < 1e-12, "{rho}");
    }
}
