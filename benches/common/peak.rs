//! The fp32 peak of this machine, for "achieved GFLOP/s against peak" lines in the benches.

/// Peak fp32 GFLOP/s of the threads this process uses: threads x 32 FLOP/cycle x the clock
/// measured while all of them run (the nominal clock in /proc/cpuinfo understates a boosting
/// CPU, which would flatter the share of peak).
pub fn peak_gflops() -> (f64, String) {
    if let Some(p) = std::env::var("EMBER_PEAK_GFLOPS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        return (p, "EMBER_PEAK_GFLOPS".into());
    }
    let threads = rayon::current_num_threads() as f64;
    let ghz = measured_clock_ghz().unwrap_or_else(|| nominal_mhz() / 1e3);
    (threads * 32.0 * ghz, format!("{threads} threads x 32 FLOP/cycle x {ghz:.2} GHz measured with all threads busy; /proc/cpuinfo says {:.2} GHz", nominal_mhz() / 1e3))
}

fn nominal_mhz() -> f64 {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("cpu MHz"))
                .and_then(|l| l.split(':').nth(1)?.trim().parse::<f64>().ok())
        })
        .unwrap_or(2500.0)
}

/// The clock, from a chain of dependent integer adds (one cycle each) run on every thread at
/// once; the slowest thread's rate.
#[cfg(target_arch = "x86_64")]
fn measured_clock_ghz() -> Option<f64> {
    use std::sync::Mutex;
    let rates = Mutex::new(Vec::new());
    rayon::broadcast(|_| {
        let iterations: u64 = 50_000_000;
        let start = std::time::Instant::now();
        // SAFETY: register-only arithmetic; 8 dependent adds per iteration.
        unsafe {
            std::arch::asm!(
                "2:",
                "add {x}, 1", "add {x}, 1", "add {x}, 1", "add {x}, 1",
                "add {x}, 1", "add {x}, 1", "add {x}, 1", "add {x}, 1",
                "dec {n}",
                "jnz 2b",
                x = inout(reg) 0u64 => _,
                n = inout(reg) iterations => _,
                options(nomem, nostack),
            );
        }
        rates
            .lock()
            .unwrap()
            .push(8.0 * iterations as f64 / start.elapsed().as_secs_f64() / 1e9);
    });
    rates.into_inner().unwrap().into_iter().reduce(f64::min)
}

#[cfg(not(target_arch = "x86_64"))]
fn measured_clock_ghz() -> Option<f64> {
    None
}
