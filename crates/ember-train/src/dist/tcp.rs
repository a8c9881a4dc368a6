//! The rendezvous, and the collective for CPU tensors: every rank connects to rank 0 at
//! `MASTER_ADDR:MASTER_PORT`; an all-reduce sends each rank's buffer to rank 0, which sums
//! them in rank order (so every run adds in the same order) and sends the sum back. A star
//! is the simplest correct topology and enough for the few processes one machine runs; on
//! GPUs the gradients go through NCCL, and this path only carries NCCL's unique id.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use candle_core::{DType, Result, Tensor};
use ember_core::dist::World;

use super::Collective;

pub struct TcpGroup {
    rank: usize,
    size: usize,
    /// Rank 0: a stream to each other rank (rank r at index r - 1); the others: one, to rank 0.
    links: Mutex<Vec<TcpStream>>,
}

fn failed(what: &str) -> impl Fn(std::io::Error) -> candle_core::Error + '_ {
    move |e| candle_core::Error::Msg(format!("data-parallel {what}: {e}"))
}

impl TcpGroup {
    /// Connects the ranks of `world`, waiting up to `timeout` for all of them.
    pub fn connect(world: &World, timeout: Duration) -> Result<Self> {
        let deadline = Instant::now() + timeout;
        let links = if world.is_primary() {
            accept_all(world, deadline)?
        } else {
            let mut stream = loop {
                match TcpStream::connect(&world.master) {
                    Ok(s) => break s,
                    Err(e) if Instant::now() > deadline => {
                        return Err(failed(&format!(
                            "rank {} found no rank 0 at {}",
                            world.rank, world.master
                        ))(e))
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(50)),
                }
            };
            stream.set_nodelay(true).map_err(failed("rendezvous"))?;
            let hello = [world.rank as u32, world.size as u32];
            let bytes: Vec<u8> = hello.iter().flat_map(|v| v.to_le_bytes()).collect();
            stream.write_all(&bytes).map_err(failed("rendezvous"))?;
            vec![stream]
        };
        Ok(Self {
            rank: world.rank,
            size: world.size,
            links: Mutex::new(links),
        })
    }

    /// Rank 0's `bytes` on every rank (the others' `bytes` are ignored).
    pub fn broadcast_bytes(&self, bytes: &[u8]) -> Result<Vec<u8>> {
        let mut links = self
            .links
            .lock()
            .expect("no rank panicked holding the links");
        if self.rank == 0 {
            for link in links.iter_mut() {
                send(link, bytes)?;
            }
            Ok(bytes.to_vec())
        } else {
            receive(&mut links[0])
        }
    }

    /// Every rank's `bytes` (the same length on every rank), concatenated in rank order, on
    /// every rank.
    pub fn all_gather_bytes(&self, bytes: &[u8]) -> Result<Vec<u8>> {
        let mut links = self
            .links
            .lock()
            .expect("no rank panicked holding the links");
        if self.rank == 0 {
            let mut all = bytes.to_vec();
            for link in links.iter_mut() {
                let theirs = receive(link)?;
                if theirs.len() != bytes.len() {
                    candle_core::bail!(
                        "data-parallel all-gather: ranks disagree on the size ({} vs {} bytes)",
                        bytes.len(),
                        theirs.len()
                    );
                }
                all.extend_from_slice(&theirs);
            }
            for link in links.iter_mut() {
                send(link, &all)?;
            }
            Ok(all)
        } else {
            send(&mut links[0], bytes)?;
            receive(&mut links[0])
        }
    }

    /// The element-wise sum over the ranks of `values`, added in rank order.
    fn all_reduce_sum<T: Wire>(&self, values: Vec<T>) -> Result<Vec<T>> {
        let mut links = self
            .links
            .lock()
            .expect("no rank panicked holding the links");
        if self.rank == 0 {
            let mut sum = values;
            for link in links.iter_mut() {
                let theirs = T::decode(&receive(link)?);
                if theirs.len() != sum.len() {
                    candle_core::bail!(
                        "data-parallel all-reduce: ranks disagree on the gradient size ({} vs {})",
                        sum.len(),
                        theirs.len()
                    );
                }
                for (s, t) in sum.iter_mut().zip(theirs) {
                    *s = s.add(t);
                }
            }
            let bytes = T::encode(&sum);
            for link in links.iter_mut() {
                send(link, &bytes)?;
            }
            Ok(sum)
        } else {
            send(&mut links[0], &T::encode(&values))?;
            Ok(T::decode(&receive(&mut links[0])?))
        }
    }
}

/// Rank 0 accepts one connection from each other rank, which names itself first.
fn accept_all(world: &World, deadline: Instant) -> Result<Vec<TcpStream>> {
    let listener = TcpListener::bind(&world.master)
        .map_err(failed(&format!("rank 0 cannot listen on {}", world.master)))?;
    listener
        .set_nonblocking(true)
        .map_err(failed("rendezvous"))?;
    let mut links: Vec<Option<TcpStream>> = (1..world.size).map(|_| None).collect();
    while links.iter().any(Option::is_none) {
        match listener.accept() {
            Ok((mut stream, _)) => {
                stream
                    .set_nonblocking(false)
                    .map_err(failed("rendezvous"))?;
                stream.set_nodelay(true).map_err(failed("rendezvous"))?;
                let mut hello = [0u8; 8];
                stream
                    .read_exact(&mut hello)
                    .map_err(failed("rendezvous"))?;
                let rank = u32::from_le_bytes(hello[..4].try_into().expect("4 bytes")) as usize;
                let size = u32::from_le_bytes(hello[4..].try_into().expect("4 bytes")) as usize;
                if size != world.size || rank == 0 || rank >= size || links[rank - 1].is_some() {
                    candle_core::bail!(
                        "data-parallel rendezvous at {}: a process claims rank {rank} of {size} (this world has {} ranks)",
                        world.master,
                        world.size
                    );
                }
                links[rank - 1] = Some(stream);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if Instant::now() > deadline {
                    let missing = links.iter().filter(|l| l.is_none()).count();
                    candle_core::bail!(
                        "data-parallel rendezvous at {}: {missing} of {} ranks never arrived",
                        world.master,
                        world.size - 1
                    );
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(failed("rendezvous")(e)),
        }
    }
    Ok(links.into_iter().flatten().collect())
}

fn send(link: &mut TcpStream, bytes: &[u8]) -> Result<()> {
    let failed = failed("exchange (did another rank stop?)");
    link.write_all(&(bytes.len() as u64).to_le_bytes())
        .map_err(&failed)?;
    link.write_all(bytes).map_err(&failed)
}

fn receive(link: &mut TcpStream) -> Result<Vec<u8>> {
    let failed = failed("exchange (did another rank stop?)");
    let mut len = [0u8; 8];
    link.read_exact(&mut len).map_err(&failed)?;
    let mut bytes = vec![0u8; u64::from_le_bytes(len) as usize];
    link.read_exact(&mut bytes).map_err(&failed)?;
    Ok(bytes)
}

/// The element types that travel, little-endian.
trait Wire: Copy + Sized {
    fn add(self, other: Self) -> Self;
    fn encode(values: &[Self]) -> Vec<u8>;
    fn decode(bytes: &[u8]) -> Vec<Self>;
}

macro_rules! wire {
    ($t:ty, $n:expr) => {
        impl Wire for $t {
            fn add(self, other: Self) -> Self {
                self + other
            }
            fn encode(values: &[Self]) -> Vec<u8> {
                values.iter().flat_map(|v| v.to_le_bytes()).collect()
            }
            fn decode(bytes: &[u8]) -> Vec<Self> {
                bytes
                    .chunks_exact($n)
                    .map(|c| <$t>::from_le_bytes(c.try_into().expect("whole elements")))
                    .collect()
            }
        }
    };
}
wire!(f32, 4);
wire!(f64, 8);

impl Collective for TcpGroup {
    fn all_reduce_mean(&self, t: &Tensor) -> Result<Tensor> {
        let n = self.size as f64;
        let (dev, len) = (t.device(), t.elem_count());
        match t.dtype() {
            DType::F64 => {
                let sum = self.all_reduce_sum(t.to_vec1::<f64>()?)?;
                Tensor::from_vec(sum.into_iter().map(|v| v / n).collect(), len, dev)
            }
            DType::F32 => {
                let sum = self.all_reduce_sum(t.to_vec1::<f32>()?)?;
                Tensor::from_vec(sum.into_iter().map(|v| v / n as f32).collect(), len, dev)
            }
            other => candle_core::bail!("data-parallel all-reduce of {other:?}: only f32 and f64"),
        }
    }

    fn broadcast(&self, t: &Tensor) -> Result<Tensor> {
        through_bytes(t, 1, |bytes| self.broadcast_bytes(bytes))
    }

    fn all_gather(&self, t: &Tensor) -> Result<Tensor> {
        through_bytes(t, self.size, |bytes| self.all_gather_bytes(bytes))
    }
}

/// `t` (1-d) sent through a byte exchange `via` that returns `copies` tensors' worth: f64
/// travels as f64, every other float type as f32 and back (exact for bf16 and f16).
fn through_bytes(
    t: &Tensor,
    copies: usize,
    via: impl FnOnce(&[u8]) -> Result<Vec<u8>>,
) -> Result<Tensor> {
    let (dev, len) = (t.device(), t.elem_count() * copies);
    if t.dtype() == DType::F64 {
        let bytes = via(&f64::encode(&t.to_vec1::<f64>()?))?;
        return Tensor::from_vec(f64::decode(&bytes), len, dev);
    }
    let bytes = via(&f32::encode(&t.to_dtype(DType::F32)?.to_vec1::<f32>()?))?;
    Tensor::from_vec(f32::decode(&bytes), len, dev)?.to_dtype(t.dtype())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `size` ranks as threads of this process, on a free port.
    fn ranks<R: Send + 'static>(
        size: usize,
        work: impl Fn(TcpGroup) -> R + Send + Sync + Clone + 'static,
    ) -> Vec<R> {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let handles: Vec<_> = (0..size)
            .map(|rank| {
                let work = work.clone();
                std::thread::spawn(move || {
                    let world = World {
                        rank,
                        size,
                        local_rank: rank,
                        master: format!("127.0.0.1:{port}"),
                        launched: true,
                    };
                    work(TcpGroup::connect(&world, Duration::from_secs(20)).unwrap())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    }

    #[test]
    fn every_rank_gets_the_mean_the_gathered_rows_and_rank_zeros_broadcast() {
        let out = ranks(3, |g| {
            let r = g.rank as f32;
            let dev = candle_core::Device::Cpu;
            let mean = g
                .all_reduce_mean(&Tensor::new(&[r, 10.0 * r], &dev).unwrap())
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
            let wide = g
                .all_reduce_mean(&Tensor::new(&[r as f64], &dev).unwrap())
                .unwrap()
                .to_vec1::<f64>()
                .unwrap();
            let half = Tensor::new(&[r + 0.5], &dev)
                .unwrap()
                .to_dtype(DType::BF16)
                .unwrap();
            let gathered = g
                .all_gather(&Tensor::new(&[r, -r], &dev).unwrap())
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
            assert_eq!(gathered, [0.0, -0.0, 1.0, -1.0, 2.0, -2.0]);
            let from_zero = g.broadcast(&half).unwrap();
            assert_eq!(from_zero.dtype(), DType::BF16);
            let from_zero = from_zero
                .to_dtype(DType::F32)
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
            (mean, wide, from_zero)
        });
        for (mean, wide, from_zero) in out {
            assert_eq!(mean, [1.0, 10.0]);
            assert_eq!(wide, [1.0]);
            assert_eq!(from_zero, [0.5]);
        }
    }

    #[test]
    fn ranks_that_disagree_on_the_size_are_an_error_not_a_hang() {
        let out = ranks(2, |g| {
            let n = if g.rank == 0 { 2 } else { 3 };
            g.all_reduce_sum(vec![1f32; n]).is_err()
        });
        assert!(out[0], "rank 0 sees the mismatch");
    }
}
