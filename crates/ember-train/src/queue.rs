//! The memory queue of MoCo and ReSSL: the teacher's past embeddings, `[d, k]` feature-major
//! with unit columns as the official `queue` buffer, overwritten oldest first at `ptr`.

use std::collections::HashMap;

use candle_core::{DType, Device, Result, Tensor};
use ember_core::EmberRng;
use ember_ops::l2_normalize;

pub struct FeatureQueue {
    queue: Tensor,
    ptr: usize,
}

impl FeatureQueue {
    /// `k` random unit columns of width `d` (`randn` then normalised, as the official
    /// initialisation), the pointer at 0.
    pub fn random(d: usize, k: usize, rng: &mut EmberRng, device: &Device) -> Result<Self> {
        let queue = rng
            .normal_tensor((d, k), 0.0, 1.0, DType::F32, device)
            .map_err(candle_core::Error::wrap)?;
        Self::new(l2_normalize(&queue, 0)?, 0)
    }

    /// A queue with these entries `[d, k]` and pointer (a checkpoint's `queue` and
    /// `queue_ptr`).
    pub fn new(queue: Tensor, ptr: usize) -> Result<Self> {
        let (_, k) = queue.dims2()?;
        if ptr >= k {
            candle_core::bail!("queue pointer {ptr} is past the queue's {k} entries")
        }
        Ok(Self {
            queue: queue.detach(),
            ptr,
        })
    }

    /// The entries `[d, k]`, without gradient.
    pub fn entries(&self) -> &Tensor {
        &self.queue
    }

    pub fn ptr(&self) -> usize {
        self.ptr
    }

    pub fn len(&self) -> usize {
        self.queue.dims()[1]
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The entries and the pointer as checkpoint tensors: `name` and `{name}_ptr` (int64
    /// `[1]`), the official buffers' layout.
    pub fn state(&self, name: &str) -> Vec<(String, Tensor)> {
        let ptr =
            Tensor::new(&[self.ptr as i64], self.queue.device()).expect("a one-element tensor");
        vec![
            (name.to_string(), self.queue.clone()),
            (format!("{name}_ptr"), ptr),
        ]
    }

    /// The queue [`FeatureQueue::state`] saved under `name`.
    pub fn restore(saved: &HashMap<String, Tensor>, name: &str) -> Result<Self> {
        let (Some(entries), Some(ptr)) = (saved.get(name), saved.get(&format!("{name}_ptr")))
        else {
            candle_core::bail!("the checkpoint holds no `{name}` queue")
        };
        let ptr = ptr.flatten_all()?.to_vec1::<i64>()?[0] as usize;
        Self::new(entries.clone(), ptr)
    }

    /// Writes `keys` `[n, d]` (detached) as columns `ptr..ptr + n`, wrapping past the end,
    /// and moves the pointer by `n` modulo the length. The official code asserts that the
    /// length is a multiple of the batch (so it never wraps inside a batch); wrapping here
    /// gives the same result in that case and takes a short last batch too.
    pub fn enqueue(&mut self, keys: &Tensor) -> Result<()> {
        let (n, d) = keys.dims2()?;
        let k = self.len();
        if d != self.queue.dims()[0] || n > k {
            candle_core::bail!(
                "queue of {k} entries of width {}: cannot take keys {:?}",
                self.queue.dims()[0],
                keys.dims()
            )
        }
        let columns = keys.detach().to_dtype(self.queue.dtype())?.t()?;
        let first = n.min(k - self.ptr);
        self.queue = self.queue.slice_assign(
            &[0..d, self.ptr..self.ptr + first],
            &columns.narrow(1, 0, first)?,
        )?;
        if first < n {
            self.queue = self
                .queue
                .slice_assign(&[0..d, 0..n - first], &columns.narrow(1, first, n - first)?)?;
        }
        self.ptr = (self.ptr + n) % k;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_replaced_in_order_and_the_pointer_wraps() {
        let dev = Device::Cpu;
        let mut q = FeatureQueue::new(Tensor::zeros((2, 4), DType::F32, &dev).unwrap(), 3).unwrap();
        let keys = Tensor::new(&[[1f32, 2.], [3., 4.]], &dev).unwrap();
        q.enqueue(&keys).unwrap();
        assert_eq!(q.ptr(), 1);
        let e = q.entries().to_vec2::<f32>().unwrap();
        assert_eq!(e, vec![vec![3., 0., 0., 1.], vec![4., 0., 0., 2.]]);
    }

    #[test]
    fn state_round_trips() {
        let mut q = FeatureQueue::random(3, 4, &mut EmberRng::new(2), &Device::Cpu).unwrap();
        q.enqueue(&Tensor::ones((3, 3), DType::F32, &Device::Cpu).unwrap())
            .unwrap();
        let saved: HashMap<String, Tensor> = q.state("queue").into_iter().collect();
        let back = FeatureQueue::restore(&saved, "queue").unwrap();
        assert_eq!(back.ptr(), 3);
        assert_eq!(
            back.entries().to_vec2::<f32>().unwrap(),
            q.entries().to_vec2::<f32>().unwrap()
        );
        assert!(FeatureQueue::restore(&saved, "other").is_err());
    }

    #[test]
    fn random_queue_has_unit_columns() {
        let q = FeatureQueue::random(3, 5, &mut EmberRng::new(0), &Device::Cpu).unwrap();
        let norms = q
            .entries()
            .sqr()
            .unwrap()
            .sum(0)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert!(norms.iter().all(|n| (n - 1.0).abs() < 1e-5));
    }
}
