use std::process::ExitCode;

use ember::cli::{Cli, Command};
use ember::commands;

// Training allocates and frees activation-sized buffers every step; glibc hands each one
// back to the kernel (mmap/munmap), so every step paid page faults and TLB shootdowns on
// fresh pages (a fifth of the time in `perf`). mimalloc reuses them, and with purging off
// (below) never returns them: ResNet training went from 164 to 220 images/s on 2 cores.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_arena_eager_commit` and `mi_option_purge_delay` in mimalloc's `mi_option_e`
/// (v2 and v3); libmimalloc-sys does not name them. -1 disables purging.
const MI_OPTION_ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

fn main() -> ExitCode {
    // SAFETY: sets a plain integer option; mimalloc reads options on each purge decision.
    unsafe {
        libmimalloc_sys::mi_option_set(MI_OPTION_ARENA_EAGER_COMMIT, 1);
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1);
    }
    let cli: Cli = match ember_cli::parse_args() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    ember_cli::run(|| {
        let (device, dtype) = cli.runtime.setup()?;
        match &cli.command {
            Command::Train(cmd) => commands::train::run(cmd, &device, dtype, cli.runtime.seed),
            Command::Eval(cmd) => commands::eval::run(cmd, &device, dtype),
            Command::Predict(cmd) => commands::predict::run(cmd, &device, dtype),
            Command::Info(cmd) => commands::info::run(cmd),
            Command::Pull(cmd) => commands::pull::run(cmd),
        }
    })
}
