//! What every Ember binary (and bench) does first in `main`: the allocator's options
//! ([`crate::alloc`]) and the size of candle's CPU worker pool.
//!
//! candle 0.11 runs elementwise ops on a "barrier pool" of `CANDLE_NUM_THREADS - 1` extra
//! threads that spin for 25,000 iterations between jobs. On a small machine the spinning
//! thread takes the core the GEMM threads (rayon) need: in `perf`, 34% of LightViT training
//! samples were that spin. Without the pool (`CANDLE_NUM_THREADS=1`; GEMMs and Ember's own
//! kernels still use every rayon thread) an epoch on the bundled subset ran 17% faster for
//! ResNet-18 (301 -> 351 img/s) and 12% for lightvit_nano_32 (247 -> 277) on 2 cores, with
//! identical losses. A value the user sets is kept.

/// Configures the allocator and, unless the environment says otherwise, turns candle's
/// spinning CPU pool off. Must run before anything touches candle or spawns a thread.
pub fn configure() {
    crate::alloc::configure();
    if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        // Single-threaded at this point (the first thing in main), as set_var requires.
        std::env::set_var("CANDLE_NUM_THREADS", "1");
    }
}
