//! GreenMIM's packing of windows into equal-size groups (`knapsack` and `group_windows` in
//! the official `group_window_attention.py`), reproduced step for step: the packing decides
//! which windows share an attention call, and the parity fixtures check it exactly, tie-breaks
//! included.
//!
//! Each round solves a 0/1 knapsack whose values equal the weights (the largest total of
//! window sizes that fits the capacity), takes the windows its backtrack selects, and repeats
//! on the rest until every window is placed.

/// The best packable total `<= capacity` of `weights` and the indices that reach it,
/// ascending. The backtrack runs from the last item down and skips an item whenever the same
/// total is reachable without it, so earlier items win ties (as the official code does).
pub fn knapsack(capacity: usize, weights: &[usize]) -> (usize, Vec<usize>) {
    let (n, width) = (weights.len(), capacity + 1);
    // best[i * width + w]: the largest total of items 0..i that fits in w.
    let mut best = vec![0usize; (n + 1) * width];
    for (i, &wt) in weights.iter().enumerate() {
        for w in 0..width {
            let skip = best[i * width + w];
            best[(i + 1) * width + w] = if wt <= w {
                skip.max(wt + best[i * width + w - wt])
            } else {
                skip
            };
        }
    }
    let total = best[n * width + capacity];
    let (mut left, mut w) = (total, capacity);
    let mut selected = Vec::new();
    for i in (1..=n).rev() {
        if left == 0 {
            break;
        }
        if left != best[(i - 1) * width + w] {
            selected.push(i - 1);
            left -= weights[i - 1];
            w -= weights[i - 1];
        }
    }
    selected.reverse();
    (total, selected)
}

/// Windows of `sizes` tokens packed into groups of at most `capacity` tokens: per group, its
/// token count and its window indices (ascending), groups in the order the rounds emit them.
/// Every size must be at most `capacity` and above 0 (the official code uses the largest
/// size as the capacity).
pub fn group_windows(capacity: usize, sizes: &[usize]) -> (Vec<usize>, Vec<Vec<usize>>) {
    let mut remaining: Vec<usize> = (0..sizes.len()).collect();
    let (mut fills, mut groups) = (Vec::new(), Vec::new());
    while !remaining.is_empty() {
        let weights: Vec<usize> = remaining.iter().map(|&w| sizes[w]).collect();
        let (fill, picked) = knapsack(capacity, &weights);
        assert!(
            !picked.is_empty(),
            "a window larger than the group capacity"
        );
        groups.push(picked.iter().map(|&p| remaining[p]).collect());
        fills.push(fill);
        // `picked` is ascending: removing from the back keeps the other positions valid.
        for &p in picked.iter().rev() {
            remaining.remove(p);
        }
    }
    (fills, groups)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn earlier_items_win_ties() {
        assert_eq!(knapsack(10, &[3, 4, 5, 6]), (10, vec![1, 3]));
        assert_eq!(knapsack(6, &[3, 3, 3]), (6, vec![0, 1]));
        assert_eq!(knapsack(36, &[19, 9, 7]), (35, vec![0, 1, 2]));
    }

    #[test]
    fn every_window_lands_in_exactly_one_group() {
        let sizes = [3, 3, 1, 2];
        assert_eq!(
            group_windows(3, &sizes),
            (vec![3, 3, 3], vec![vec![0], vec![1], vec![2, 3]])
        );
        assert_eq!(
            group_windows(8, &sizes),
            (vec![8, 1], vec![vec![0, 1, 3], vec![2]])
        );
    }
}
