//! The memory allocator of every Ember binary (and bench): mimalloc, configured to keep
//! what it has.
//!
//! Training allocates and frees activation-sized buffers every step; glibc hands each one
//! back to the kernel (mmap/munmap), so every step paid page faults and TLB shootdowns on
//! fresh pages (a fifth of the time in `perf`). mimalloc reuses them, and with purging off
//! (below) never returns them: ResNet training went from 164 to 220 images/s on 2 cores.
//! Defined in this library, which every tool links, so that they all use it; [`configure`]
//! sets the options; [`crate::startup::configure`] calls it first in `main`.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_arena_eager_commit` and `mi_option_purge_delay` in mimalloc's `mi_option_e`
/// (v2 and v3); libmimalloc-sys does not name them. -1 disables purging.
const MI_OPTION_ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Commits arenas eagerly and never purges freed memory back to the kernel.
pub fn configure() {
    // SAFETY: sets plain integer options; mimalloc reads them on each purge decision.
    unsafe {
        libmimalloc_sys::mi_option_set(MI_OPTION_ARENA_EAGER_COMMIT, 1);
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1);
    }
}
