//! DyRep's de-parameterisation rule (`adjust_model`): which branches of a block to cut, from
//! its `branch_weights()`.

use super::{Branch, Branches};

/// The branches to keep, or `None` when nothing is cut. The valid weights are those of the
/// branches other than kxk that are neither -1 (absent) nor exactly 1; when there are at
/// least two and their unbiased standard deviation exceeds `spread`, every branch below
/// both their mean and `floor` is cut (official values: spread 0.02, floor 0.1).
pub fn branches_to_keep(weights: &[f64; 7], spread: f64, floor: f64) -> Option<Branches> {
    // torch.tensor of Python floats: the statistics are computed in f32.
    let valid: Vec<f32> = Branch::ALL
        .into_iter()
        .filter(|b| *b != Branch::Kxk)
        .map(|b| weights[b.index()])
        .filter(|w| *w != -1.0 && *w != 1.0)
        .map(|w| w as f32)
        .collect();
    if valid.len() < 2 {
        return None;
    }
    let n = valid.len() as f32;
    let mean = valid.iter().sum::<f32>() / n;
    let var = valid.iter().map(|w| (w - mean).powi(2)).sum::<f32>() / (n - 1.0);
    if var.sqrt() as f64 <= spread {
        return None;
    }
    let mut keep = Branches::ALL;
    let mut cuts_any = false;
    for b in Branch::ALL {
        let w = weights[b.index()];
        if w < mean as f64 && w < floor {
            keep = keep.with(b, false);
            cuts_any |= w != -1.0;
        }
    }
    cuts_any.then_some(keep)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_only_branches_below_the_mean_and_the_floor() {
        // Absent identity (-1) is dropped from the statistics and from the kept set.
        let w = [0.5, 0.05, 0.02, 1.0, 0.3, 0.08, -1.0];
        let keep = branches_to_keep(&w, 0.02, 0.1).unwrap();
        assert_eq!(keep.flags(), [1, 0, 0, 1, 1, 0, 0]);
    }

    #[test]
    fn a_tight_spread_or_a_single_branch_cuts_nothing() {
        let fresh = [0.01, 0.01, 0.01, 1.0, 0.01, 0.01, 0.01];
        assert_eq!(branches_to_keep(&fresh, 0.02, 0.1), None);
        let single = [-1.0, -1.0, 0.01, 1.0, -1.0, -1.0, -1.0];
        assert_eq!(branches_to_keep(&single, 0.02, 0.1), None);
    }
}
