//! `ember launch`: runs a training command as N processes of one data-parallel run on this
//! machine, as `torchrun --nproc-per-node N` does: each child gets `RANK`, `LOCAL_RANK`,
//! `WORLD_SIZE`, `MASTER_ADDR` and `MASTER_PORT`, takes the GPU of its local rank, trains
//! on its shard of every batch, and only rank 0 writes. When one child fails the others are
//! stopped, and the launcher exits with the failed child's code.

use std::path::PathBuf;
use std::process::{Child, Command, ExitCode};
use std::time::Duration;

use ember_core::{EmberError, Result};

use crate::cli::LaunchCommand;

pub fn run(cmd: &LaunchCommand) -> ExitCode {
    match launch(cmd) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", e.to_string().replace('\n', " "));
            ExitCode::from(e.exit_code() as u8)
        }
    }
}

fn launch(cmd: &LaunchCommand) -> Result<ExitCode> {
    if cmd.nproc == 0 {
        return Err(EmberError::bad_input("--nproc must be at least 1"));
    }
    let (program, args) = cmd.command.split_first().ok_or_else(|| {
        EmberError::bad_input("no command to launch: ember launch --nproc N -- TOOL ARGS...")
    })?;
    let program = resolve(program)?;
    let port = match cmd.master_port {
        Some(p) => p,
        None => free_port()?,
    };
    // Like torchrun's OMP_NUM_THREADS=1: N processes each with a thread per core would
    // oversubscribe the CPU. Each gets its share unless the user chose (env or --threads).
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = std::env::var("RAYON_NUM_THREADS")
        .unwrap_or_else(|_| (cores / cmd.nproc).max(1).to_string());
    let mut children = Vec::with_capacity(cmd.nproc);
    for rank in 0..cmd.nproc {
        let mut command = Command::new(&program);
        die_with_launcher(&mut command);
        let child = command
            .args(args)
            .env("RANK", rank.to_string())
            .env("LOCAL_RANK", rank.to_string())
            .env("WORLD_SIZE", cmd.nproc.to_string())
            .env("MASTER_ADDR", "127.0.0.1")
            .env("MASTER_PORT", port.to_string())
            .env("RAYON_NUM_THREADS", &threads)
            .spawn();
        match child {
            Ok(c) => children.push(c),
            Err(e) => {
                stop(&mut children);
                return Err(EmberError::bad_input(format!(
                    "cannot start {}: {e}",
                    program.display()
                )));
            }
        }
    }
    wait_all(children)
}

/// A launcher killed outright (SIGKILL, the OOM killer) cannot stop its ranks: on Linux
/// the kernel does it for us, by sending each rank SIGKILL when its parent dies, so that no
/// orphaned rank goes on writing into a run that is about to be resumed.
fn die_with_launcher(command: &mut Command) {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        let launcher = std::process::id();
        // SAFETY: prctl and getppid are async-signal-safe, as code between fork and exec
        // must be; nothing is allocated.
        unsafe {
            command.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // The launcher may have died before prctl took effect.
                if libc::getppid() as u32 != launcher {
                    libc::_exit(1);
                }
                Ok(())
            });
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = command;
}

/// An Ember tool named without a path is the one installed beside this `ember`, else the
/// one on PATH.
fn resolve(program: &str) -> Result<PathBuf> {
    let named = PathBuf::from(program);
    if named.components().count() > 1 {
        return Ok(named);
    }
    if let Some(beside) = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|d| d.join(program)))
        .filter(|p| p.is_file())
    {
        return Ok(beside);
    }
    Ok(named)
}

fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| EmberError::Runtime(format!("no free port for the rendezvous: {e}")))?;
    let port = listener
        .local_addr()
        .map_err(|e| EmberError::Runtime(format!("no free port for the rendezvous: {e}")))?
        .port();
    Ok(port)
}

/// Waits for every child; the first failure stops the rest and gives the exit code.
fn wait_all(mut children: Vec<Child>) -> Result<ExitCode> {
    let mut running: Vec<bool> = vec![true; children.len()];
    while running.iter().any(|&r| r) {
        for (rank, child) in children.iter_mut().enumerate() {
            if !running[rank] {
                continue;
            }
            let status = child
                .try_wait()
                .map_err(|e| EmberError::Runtime(format!("waiting for rank {rank}: {e}")))?;
            let Some(status) = status else { continue };
            running[rank] = false;
            if !status.success() {
                let code = status.code().unwrap_or(1).clamp(1, 255) as u8;
                eprintln!("ember launch: rank {rank} failed ({status}); stopping the other ranks");
                stop(&mut children);
                return Ok(ExitCode::from(code));
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(ExitCode::SUCCESS)
}

fn stop(children: &mut [Child]) {
    for child in children.iter_mut() {
        let _ = child.kill();
        let _ = child.wait();
    }
}
