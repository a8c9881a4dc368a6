//! What every Ember binary (and bench) does first in `main`: the allocator's options
//! ([`crate::alloc`]) and the size of candle's CPU worker pool; and, once `--threads` is
//! known, rayon's pool ([`compute_pool`]).
//!
//! candle 0.11 runs elementwise ops on a "barrier pool" of `CANDLE_NUM_THREADS - 1` extra
//! threads that spin for 25,000 iterations between jobs. On a small machine the spinning
//! thread takes the core the GEMM threads (rayon) need: in `perf`, 34% of LightViT training
//! samples were that spin. Without the pool (`CANDLE_NUM_THREADS=1`; GEMMs and Ember's own
//! kernels still use every rayon thread) an epoch on the bundled subset ran 17% faster for
//! ResNet-18 (301 -> 351 img/s) and 12% for lightvit_nano_32 (247 -> 277) on 2 cores, with
//! identical losses. A value the user sets is kept.

use std::sync::OnceLock;
use std::thread::ThreadId;

/// The thread that ran [`configure`]: a tool's `main`.
static TOOL_MAIN: OnceLock<ThreadId> = OnceLock::new();

/// Configures the allocator and, unless the environment says otherwise, turns candle's
/// spinning CPU pool off. Must run before anything touches candle or spawns a thread.
pub fn configure() {
    let _ = TOOL_MAIN.set(std::thread::current().id());
    crate::alloc::configure();
    if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        // Single-threaded at this point (the first thing in main), as set_var requires.
        std::env::set_var("CANDLE_NUM_THREADS", "1");
    }
}

/// Builds rayon's global pool: `threads` workers (default: `RAYON_NUM_THREADS` as rayon reads
/// it, which `ember launch` sets to each rank's share of the cores; else one per core), the
/// tool's main thread among them when there are two or more.
///
/// Every kernel (candle's GEMMs, Ember's ops) is called from the main thread. Outside the
/// pool, each parallel call hands its work to the workers and sleeps on a futex until they
/// finish: two context switches per op, and on 2 cores a third thread contending for them.
/// As worker 0, the main thread splits the work with the other workers and takes its share
/// itself. Work is split by the pool's size as before, so results are the same bits.
/// One thread stays outside: alone in the pool, the main thread would also be the only
/// thread to run work that other threads (a data loader, say) hand to rayon, and it does not
/// look for such work while it waits on them.
///
/// Called again, or after rayon has started, it leaves the pool as it is. Called from a
/// thread other than the one that ran [`configure`] (a test calling a tool's library), the
/// pool is built without it.
pub fn compute_pool(threads: Option<usize>) {
    let cores = || std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    let n = pool_size(
        threads,
        std::env::var("RAYON_NUM_THREADS").ok().as_deref(),
        cores,
    );
    let mut pool = rayon::ThreadPoolBuilder::new().num_threads(n);
    if n >= 2 && TOOL_MAIN.get() == Some(&std::thread::current().id()) {
        pool = pool.use_current_thread();
    }
    // Fails only if the pool already exists, in which case it stays as it is.
    let _ = pool.build_global();
}

/// The pool's size: `threads`, else a positive `RAYON_NUM_THREADS` (`env`), else `cores()`.
/// A size given to rayon's builder overrides the variable, so it is read here as rayon
/// itself would read it.
fn pool_size(threads: Option<usize>, env: Option<&str>, cores: impl Fn() -> usize) -> usize {
    threads
        .or_else(|| env.and_then(|v| v.parse().ok()).filter(|&n| n > 0))
        .unwrap_or_else(cores)
}

#[cfg(test)]
mod tests {
    use super::pool_size;

    #[test]
    fn the_pool_takes_threads_then_the_environment_then_the_cores() {
        assert_eq!(pool_size(Some(3), Some("1"), || 8), 3);
        assert_eq!(pool_size(None, Some("1"), || 8), 1);
        assert_eq!(pool_size(None, None, || 8), 8);
        // rayon ignores 0 and what does not parse, and so does the pool.
        assert_eq!(pool_size(None, Some("0"), || 8), 8);
        assert_eq!(pool_size(None, Some("two"), || 8), 8);
    }
}
