//! Synchronised batch norm across ranks simulated by threads: each rank's output and
//! gradients are the rows of one batch norm over the whole batch.

mod common;

use std::sync::{Arc, Barrier, Mutex};

use candle_core::{DType, Tensor, Var};
use common::{assert_close, max_abs_diff, randn};
use ember_ops::batch_norm_train;
use ember_ops::sync_batch_norm::{batch_norm_train_synced, RankSum};

/// What ranks exchange: each puts its tensor in its slot, all wait, each sums the slots.
struct Exchange {
    slots: Mutex<Vec<Option<Tensor>>>,
    barrier: Barrier,
}

impl Exchange {
    fn new(ranks: usize) -> Arc<Self> {
        Arc::new(Self {
            slots: Mutex::new(vec![None; ranks]),
            barrier: Barrier::new(ranks),
        })
    }

    /// The sum over ranks, as seen by `rank`.
    fn for_rank(self: &Arc<Self>, rank: usize) -> RankSum {
        let exchange = self.clone();
        Arc::new(move |t: &Tensor| {
            exchange.slots.lock().unwrap()[rank] = Some(t.clone());
            exchange.barrier.wait();
            let total = exchange
                .slots
                .lock()
                .unwrap()
                .iter()
                .map(|s| s.clone().unwrap())
                .reduce(|a, b| (a + b).unwrap())
                .unwrap();
            // Nobody overwrites a slot before every rank has read them all.
            exchange.barrier.wait();
            Ok(total)
        })
    }
}

/// `(y, dx, dweight, dbias, mean, unbiased var)` of `sum(y * target)`.
fn run(x: &Tensor, target: &Tensor, sum: Option<&RankSum>) -> [Tensor; 6] {
    let x = Var::from_tensor(x).unwrap();
    let w = Var::from_tensor(&(randn(&[3], 7, DType::F64) + 1.0).unwrap()).unwrap();
    let b = Var::from_tensor(&randn(&[3], 8, DType::F64)).unwrap();
    let (y, stats) = match sum {
        Some(s) => batch_norm_train_synced(&x, Some(&w), Some(&b), 1e-5, s).unwrap(),
        None => batch_norm_train(&x, Some(&w), Some(&b), 1e-5).unwrap(),
    };
    let grads = (&y * target)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    let g = |v: &Var| grads.get(v).unwrap().clone();
    [
        y.clone(),
        g(&x),
        g(&w),
        g(&b),
        stats.mean.clone(),
        stats.unbiased_var().unwrap(),
    ]
}

#[test]
fn ranks_normalise_as_one_batch_and_share_the_gradient() {
    // Shards of unequal size (a last batch): 3 and 5 images.
    let (x, target) = (
        randn(&[8, 3, 4, 5], 1, DType::F64),
        randn(&[8, 3, 4, 5], 2, DType::F64),
    );
    let whole = run(&x, &target, None);
    let shards = [(0, 3), (3, 5)];
    let exchange = Exchange::new(shards.len());
    let per_rank: Vec<[Tensor; 6]> = std::thread::scope(|scope| {
        let handles: Vec<_> = shards
            .iter()
            .enumerate()
            .map(|(rank, &(start, len))| {
                let sum = exchange.for_rank(rank);
                let (x, target) = (
                    x.narrow(0, start, len).unwrap(),
                    target.narrow(0, start, len).unwrap(),
                );
                scope.spawn(move || run(&x.copy().unwrap(), &target, Some(&sum)))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let rows = |i: usize| Tensor::cat(&[&per_rank[0][i], &per_rank[1][i]], 0).unwrap();
    assert_close(&rows(0), &whole[0], 1e-12, "outputs");
    // The whole batch's loss is the sum of the ranks' losses: each rank's input gradient is
    // its rows of the whole input gradient, its weight gradient its share of the sum.
    assert_close(&rows(1), &whole[1], 1e-12, "input gradients");
    for i in [2, 3] {
        let summed = (&per_rank[0][i] + &per_rank[1][i]).unwrap();
        assert_close(&summed, &whole[i], 1e-12, "parameter gradients");
    }
    for (rank, r) in per_rank.iter().enumerate() {
        assert_close(&r[4], &whole[4], 1e-12, &format!("rank {rank}: mean"));
        assert_close(
            &r[5],
            &whole[5],
            1e-12,
            &format!("rank {rank}: running variance"),
        );
    }
    // Unsynchronised, a shard's statistics are its own: the test can tell them apart.
    let alone = run(
        &x.narrow(0, 0, 3).unwrap().copy().unwrap(),
        &target.narrow(0, 0, 3).unwrap(),
        None,
    );
    assert!(max_abs_diff(&alone[4], &whole[4]) > 1e-3);
}
