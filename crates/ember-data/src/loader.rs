//! Batches from a dataset: a seeded shuffle per epoch, then decoding and augmentation (one
//! view per image, or several for self-supervised methods) on worker threads while the
//! model trains on earlier batches. Batches come out in order, and
//! every random choice depends only on (seed, epoch, position in the epoch), so a run is the
//! same whatever the number of workers, and an epoch can restart at any batch (resume).

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;

use candle_core::{Device, Tensor};
use ember_core::{EmberError, EmberRng, Result};

use crate::dataset::Dataset;
use crate::transforms::Pipeline;
use crate::views::Views;

#[derive(Debug, Clone)]
pub struct LoaderConfig {
    pub batch_size: usize,
    pub shuffle: bool,
    pub drop_last: bool,
    /// Decoding threads; 0 decodes on the caller's thread.
    pub workers: usize,
    pub seed: u64,
    /// Which part of every batch this process takes (data-parallel training).
    pub shard: Shard,
}

/// Part `index` of `count` near-equal parts of each batch: in a data-parallel run every
/// process walks the same seeded order and batches, and takes its own slice of each, so
/// that the processes together see the batch one process would (the batch size is the
/// global one) with the same augmentation per image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl Shard {
    /// The whole batch (one process, or evaluation every process runs in full).
    pub const WHOLE: Shard = Shard { index: 0, count: 1 };

    /// This process's part in the world `ember launch` set up (the whole when alone).
    pub fn of_this_process() -> Self {
        let world = ember_core::dist::world();
        Self {
            index: world.rank,
            count: world.size,
        }
    }

    /// This shard's positions among `batch`. A batch smaller than the number of parts
    /// gives the parts it cannot fill its last position again, so no process runs a step
    /// without data.
    pub fn part(&self, batch: Range<usize>) -> Range<usize> {
        let len = batch.len();
        let (start, end) = (
            batch.start + self.index * len / self.count,
            batch.start + (self.index + 1) * len / self.count,
        );
        if start == end && len > 0 {
            return batch.end - 1..batch.end;
        }
        start..end
    }
}

/// Images `[n, c, h, w]` and labels of one batch, still in host memory.
#[derive(Debug, Clone)]
pub struct Batch {
    pub images: Vec<f32>,
    pub dims: [usize; 4],
    pub labels: Vec<u32>,
    /// The class of every pixel, `[n, h, w]`, from a dense dataset (else empty).
    pub maps: Vec<u32>,
    /// The dataset index of each image (what per-sample caches key on).
    pub indices: Vec<usize>,
    /// The second and later views of the same images, each laid out as `images`.
    pub more_views: Vec<Vec<f32>>,
    /// Seconds spent augmenting this batch (on whichever thread made it).
    pub augment_seconds: f64,
}

impl Batch {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// `(images [n, c, h, w] f32, labels u32)` on `device`: the labels are `[n]`, or the
    /// pixel classes `[n, h, w]` for a dense dataset.
    pub fn to_tensors(&self, device: &Device) -> Result<(Tensor, Tensor)> {
        let images = Tensor::from_slice(&self.images, self.dims.as_slice(), device)?;
        let labels = if self.maps.is_empty() {
            Tensor::from_slice(&self.labels, self.labels.len(), device)?
        } else {
            let [n, _, h, w] = self.dims;
            Tensor::from_slice(&self.maps, (n, h, w), device)?
        };
        Ok((images, labels))
    }

    /// View `v` (0 is `images`) as `[n, c, h, w]` on `device`.
    pub fn view(&self, v: usize, device: &Device) -> Result<Tensor> {
        let data = match v {
            0 => &self.images,
            _ => self
                .more_views
                .get(v - 1)
                .ok_or_else(|| EmberError::Runtime(format!("the batch has no view {v}")))?,
        };
        Ok(Tensor::from_slice(data, self.dims.as_slice(), device)?)
    }
}

#[derive(Clone)]
pub struct Loader {
    dataset: Arc<dyn Dataset>,
    views: Arc<Views>,
    cfg: LoaderConfig,
    item_dims: [usize; 3],
}

impl Loader {
    pub fn new(dataset: Arc<dyn Dataset>, pipeline: Pipeline, cfg: LoaderConfig) -> Result<Self> {
        Self::with_views(dataset, Views(vec![pipeline]), cfg)
    }

    /// Each image augmented once per pipeline of `views` (which must agree on the shape).
    pub fn with_views(dataset: Arc<dyn Dataset>, views: Views, cfg: LoaderConfig) -> Result<Self> {
        if cfg.batch_size == 0 {
            return Err(EmberError::bad_input("batch size must be at least 1"));
        }
        if dataset.is_empty() {
            return Err(EmberError::bad_input(format!(
                "{} is empty",
                dataset.source()
            )));
        }
        let mut item_dims = None;
        for pipeline in &views.0 {
            let dims = pipeline.output_dims(dataset.image_dims())?;
            if item_dims.is_some_and(|d| d != dims) {
                return Err(EmberError::bad_input(
                    "the augmented views of an image differ in shape",
                ));
            }
            item_dims = Some(dims);
        }
        let item_dims = item_dims.ok_or_else(|| EmberError::bad_input("no view to augment"))?;
        if dataset.dense()
            && !views
                .0
                .iter()
                .all(|p| p.keeps_geometry(dataset.image_dims()))
        {
            return Err(EmberError::bad_input(format!(
                "{} has a label per pixel: crops, flips and resizing would move the pixels away from their labels",
                dataset.source()
            )));
        }
        Ok(Self {
            dataset,
            views: Arc::new(views),
            cfg,
            item_dims,
        })
    }

    pub fn dataset(&self) -> &Arc<dyn Dataset> {
        &self.dataset
    }

    /// `[c, h, w]` of the images in each batch.
    pub fn item_dims(&self) -> [usize; 3] {
        self.item_dims
    }

    pub fn batch_size(&self) -> usize {
        self.cfg.batch_size
    }

    pub fn batches_per_epoch(&self) -> usize {
        let (n, b) = (self.dataset.len(), self.cfg.batch_size);
        if self.cfg.drop_last {
            (n / b).max(1)
        } else {
            n.div_ceil(b)
        }
    }

    /// Dataset indices in the order `epoch` visits them.
    pub fn order(&self, epoch: usize) -> Vec<usize> {
        if self.cfg.shuffle {
            EmberRng::for_name(self.cfg.seed, &format!("shuffle/{epoch}"))
                .permutation(self.dataset.len())
        } else {
            (0..self.dataset.len()).collect()
        }
    }

    /// The batches of `epoch` from batch `start` on.
    pub fn epoch(&self, epoch: usize, start: usize) -> EpochBatches {
        self.batches(epoch, start, Shard::WHOLE)
    }

    /// Batches `share.index`, `share.index + share.count`, ... of `epoch`: one process's
    /// share of an evaluation, split by whole batches (every image once, none repeated).
    pub fn epoch_share(&self, epoch: usize, share: Shard) -> EpochBatches {
        self.batches(epoch, 0, share)
    }

    /// Slots `start..` of the epoch's batches taken with `share`'s stride.
    fn batches(&self, epoch: usize, start: usize, share: Shard) -> EpochBatches {
        let total = self.batches_per_epoch();
        let end = total.saturating_sub(share.index).div_ceil(share.count);
        let job = Arc::new(EpochJob {
            loader: self.clone(),
            epoch,
            order: self.order(epoch),
            share,
        });
        let next_task = Arc::new(AtomicUsize::new(start));
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = sync_channel(self.cfg.workers.max(1) * 2);
        let workers = (0..self.cfg.workers)
            .map(|_| {
                let (job, next_task, stop, tx) =
                    (job.clone(), next_task.clone(), stop.clone(), tx.clone());
                std::thread::spawn(move || loop {
                    let k = next_task.fetch_add(1, Ordering::Relaxed);
                    if k >= end || stop.load(Ordering::Relaxed) {
                        break;
                    }
                    if tx.send((k, job.slot(k))).is_err() {
                        break;
                    }
                })
            })
            .collect();
        EpochBatches {
            job,
            rx,
            pending: BTreeMap::new(),
            next: start,
            end,
            workers,
            stop,
        }
    }
}

struct EpochJob {
    loader: Loader,
    epoch: usize,
    order: Vec<usize>,
    /// Which batches the slots are: slot i is batch `index + i * count`.
    share: Shard,
}

impl EpochJob {
    fn slot(&self, i: usize) -> Result<Batch> {
        self.batch(self.share.index + i * self.share.count)
    }

    fn batch(&self, k: usize) -> Result<Batch> {
        let cfg = &self.loader.cfg;
        let first = k * cfg.batch_size;
        let positions = cfg
            .shard
            .part(first..(first + cfg.batch_size).min(self.order.len()));
        let [c, h, w] = self.loader.item_dims;
        let per_view = positions.len() * c * h * w;
        let views = &self.loader.views.0;
        let mut images: Vec<Vec<f32>> =
            views.iter().map(|_| Vec::with_capacity(per_view)).collect();
        let mut labels = Vec::with_capacity(positions.len());
        let dataset = &self.loader.dataset;
        let mut maps = Vec::with_capacity(if dataset.dense() { per_view / c } else { 0 });
        let indices = self.order[positions.clone()].to_vec();
        let mut augment_seconds = 0.0;
        for pos in positions {
            let (img, label) = if dataset.dense() {
                let (img, label, map) = dataset.get_dense(self.order[pos])?;
                maps.extend(map);
                (img, label)
            } else {
                dataset.get(self.order[pos])?
            };
            let started = std::time::Instant::now();
            for (v, pipeline) in views.iter().enumerate() {
                // View 0 keeps the single-view stream, so supervised runs are unchanged.
                let name = match v {
                    0 => format!("augment/{}/{pos}", self.epoch),
                    _ => format!("augment/{}/{pos}/view{v}", self.epoch),
                };
                let mut rng = EmberRng::for_name(cfg.seed, &name);
                images[v].extend_from_slice(&pipeline.apply(img.clone(), &mut rng).data);
            }
            augment_seconds += started.elapsed().as_secs_f64();
            labels.push(label);
        }
        let more_views = images.split_off(1);
        let images = images.pop().expect("at least one view");
        Ok(Batch {
            images,
            dims: [labels.len(), c, h, w],
            labels,
            maps,
            indices,
            more_views,
            augment_seconds,
        })
    }
}

/// The batches of one epoch, in order.
pub struct EpochBatches {
    job: Arc<EpochJob>,
    rx: Receiver<(usize, Result<Batch>)>,
    pending: BTreeMap<usize, Result<Batch>>,
    next: usize,
    end: usize,
    workers: Vec<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
}

impl Iterator for EpochBatches {
    type Item = Result<Batch>;

    fn next(&mut self) -> Option<Result<Batch>> {
        if self.next >= self.end {
            return None;
        }
        let k = self.next;
        self.next += 1;
        if self.workers.is_empty() {
            return Some(self.job.slot(k));
        }
        loop {
            if let Some(batch) = self.pending.remove(&k) {
                return Some(batch);
            }
            match self.rx.recv() {
                Ok((i, batch)) => {
                    self.pending.insert(i, batch);
                }
                Err(_) => {
                    return Some(Err(EmberError::Runtime(
                        "data loader threads stopped".into(),
                    )))
                }
            }
        }
    }
}

impl Drop for EpochBatches {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Dropping the receiver fails any send a worker is blocked in, so every worker ends.
        drop(std::mem::replace(&mut self.rx, sync_channel(0).1));
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::Chw;
    use crate::transforms::Transform;

    struct Numbers(usize, Vec<String>);

    impl Dataset for Numbers {
        fn len(&self) -> usize {
            self.0
        }
        fn get(&self, index: usize) -> Result<(Chw, u32)> {
            Ok((
                Chw {
                    channels: 1,
                    height: 2,
                    width: 2,
                    data: vec![index as f32; 4],
                },
                index as u32,
            ))
        }
        fn classes(&self) -> &[String] {
            &self.1
        }
        fn image_dims(&self) -> [usize; 3] {
            [1, 2, 2]
        }
        fn source(&self) -> String {
            "numbers".into()
        }
    }

    fn loader(workers: usize, shuffle: bool, drop_last: bool) -> Loader {
        let pipeline = Pipeline(vec![Transform::RandomCrop {
            height: 2,
            width: 2,
            padding: 1,
        }]);
        let cfg = LoaderConfig {
            batch_size: 4,
            shuffle,
            drop_last,
            workers,
            seed: 7,
            shard: Shard::WHOLE,
        };
        Loader::new(Arc::new(Numbers(10, vec![])), pipeline, cfg).unwrap()
    }

    fn collect(l: &Loader, epoch: usize, start: usize) -> Vec<Batch> {
        l.epoch(epoch, start).collect::<Result<Vec<_>>>().unwrap()
    }

    #[test]
    fn every_item_once_per_epoch_in_a_seeded_order() {
        let l = loader(2, true, false);
        let batches = collect(&l, 0, 0);
        assert_eq!(
            batches.iter().map(Batch::len).collect::<Vec<_>>(),
            vec![4, 4, 2]
        );
        let mut seen: Vec<u32> = batches.iter().flat_map(|b| b.labels.clone()).collect();
        assert_ne!(seen, (0..10).collect::<Vec<_>>(), "shuffled");
        seen.sort();
        assert_eq!(seen, (0..10).collect::<Vec<_>>());
        for b in &batches {
            let from_indices: Vec<u32> = b.indices.iter().map(|&i| i as u32).collect();
            assert_eq!(from_indices, b.labels, "indices name the items");
        }
        let other_epoch: Vec<u32> = collect(&l, 1, 0)
            .iter()
            .flat_map(|b| b.labels.clone())
            .collect();
        assert_ne!(
            other_epoch,
            batches
                .iter()
                .flat_map(|b| b.labels.clone())
                .collect::<Vec<_>>()
        );
        assert_eq!(loader(0, true, true).batches_per_epoch(), 2);
    }

    #[test]
    fn batches_do_not_depend_on_workers_and_resume_mid_epoch() {
        let serial = collect(&loader(0, true, false), 3, 0);
        let threaded = collect(&loader(3, true, false), 3, 0);
        let resumed = collect(&loader(2, true, false), 3, 1);
        for (a, b) in serial.iter().zip(&threaded) {
            assert_eq!((&a.images, &a.labels), (&b.images, &b.labels));
        }
        assert_eq!(resumed.len(), 2);
        assert_eq!(resumed[0].images, serial[1].images);
    }

    #[test]
    fn extra_views_leave_the_first_view_as_a_single_view_loader_makes_it() {
        let single = loader(2, true, false);
        let pipeline = Pipeline(vec![Transform::RandomCrop {
            height: 2,
            width: 2,
            padding: 1,
        }]);
        let cfg = LoaderConfig {
            batch_size: 4,
            shuffle: true,
            drop_last: false,
            workers: 2,
            seed: 7,
            shard: Shard::WHOLE,
        };
        let views = Views(vec![pipeline.clone(), pipeline]);
        let two = Loader::with_views(Arc::new(Numbers(10, vec![])), views, cfg).unwrap();
        let (a, b) = (collect(&single, 2, 0), collect(&two, 2, 0));
        for (one, both) in a.iter().zip(&b) {
            assert_eq!(one.images, both.images);
            assert_eq!(both.more_views.len(), 1);
            assert_eq!(both.more_views[0].len(), both.images.len());
        }
        assert!(
            b.iter().any(|x| x.more_views[0] != x.images),
            "the second view draws its own crops"
        );
        let t = b[0].view(1, &Device::Cpu).unwrap();
        assert_eq!(t.dims(), &[4, 1, 2, 2]);
        assert!(b[0].view(2, &Device::Cpu).is_err());
    }

    #[test]
    fn shards_split_each_batch_and_together_make_it_whole() {
        let whole = collect(&loader(0, true, false), 1, 0);
        let parts: Vec<Vec<Batch>> = (0..3)
            .map(|index| {
                let mut l = loader(1, true, false);
                l.cfg.shard = Shard { index, count: 3 };
                collect(&l, 1, 0)
            })
            .collect();
        for (k, batch) in whole.iter().enumerate() {
            let joined: Vec<f32> = parts.iter().flat_map(|p| p[k].images.clone()).collect();
            let labels: Vec<u32> = parts.iter().flat_map(|p| p[k].labels.clone()).collect();
            if batch.len() >= 3 {
                assert_eq!(joined, batch.images, "batch {k}: same images, same crops");
                assert_eq!(labels, batch.labels);
            } else {
                // The last batch (2 images) is too small for 3 parts: the third repeats one.
                assert_eq!(parts[2][k].labels, batch.labels[1..].to_vec());
            }
        }
        assert_eq!(parts[0][0].len() + parts[1][0].len() + parts[2][0].len(), 4);
    }

    #[test]
    fn shares_of_an_epoch_take_every_batch_once() {
        let whole = collect(&loader(0, false, false), 0, 0);
        let shares: Vec<Vec<Batch>> = (0..2)
            .map(|index| {
                let share = Shard { index, count: 2 };
                loader(1, false, false)
                    .epoch_share(0, share)
                    .collect::<Result<Vec<_>>>()
                    .unwrap()
            })
            .collect();
        // 3 batches: rank 0 takes batches 0 and 2, rank 1 batch 1.
        assert_eq!((shares[0].len(), shares[1].len()), (2, 1));
        assert_eq!(shares[0][1].labels, whole[2].labels);
        assert_eq!(shares[1][0].images, whole[1].images);
        let share = Shard { index: 3, count: 4 };
        assert_eq!(loader(0, false, false).epoch_share(0, share).count(), 0);
    }

    #[test]
    fn a_shard_part_covers_its_slice() {
        let parts: Vec<Range<usize>> = (0..4)
            .map(|index| Shard { index, count: 4 }.part(8..18))
            .collect();
        assert_eq!(parts, vec![8..10, 10..13, 13..15, 15..18]);
        assert_eq!(Shard::WHOLE.part(3..7), 3..7);
        assert_eq!(Shard { index: 0, count: 2 }.part(5..6), 5..6);
        assert_eq!(Shard { index: 1, count: 2 }.part(5..6), 5..6);
    }

    #[test]
    fn dropping_an_epoch_early_stops_the_workers() {
        let l = loader(2, false, false);
        let mut it = l.epoch(0, 0);
        assert!(it.next().is_some());
        drop(it);
    }
}
