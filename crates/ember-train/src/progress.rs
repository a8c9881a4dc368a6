//! Progress on stderr: an indicatif bar (ETA, loss, lr, images/s) on a terminal, plain lines
//! (about ten per epoch) otherwise, so logs stay readable when piped.

use std::io::IsTerminal;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

pub struct Progress {
    bar: Option<ProgressBar>,
    label: String,
    total: usize,
    every: usize,
    quiet: bool,
    started: Instant,
}

impl Progress {
    pub fn new(label: String, total: usize, start: usize, quiet: bool) -> Self {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let bar =
                ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(
                    "{prefix} [{bar:28.cyan/blue}] {pos}/{len} {msg} eta {eta}",
                )
                .expect("the template is valid")
                .progress_chars("=> "),
            );
            bar.set_prefix(label.clone());
            bar.set_position(start as u64);
            bar
        });
        let every = if quiet {
            usize::MAX
        } else {
            (total / 10).max(1)
        };
        Self {
            bar,
            label,
            total,
            every,
            quiet,
            started: Instant::now(),
        }
    }

    /// After step `done` (1-based) of the epoch.
    pub fn update(&self, done: usize, message: &str) {
        match &self.bar {
            Some(bar) => {
                bar.set_position(done as u64);
                bar.set_message(message.to_string());
            }
            None if !self.quiet && (done.is_multiple_of(self.every) || done == self.total) => {
                let secs = self.started.elapsed().as_secs_f64();
                eprintln!(
                    "{} {done}/{} {message} ({secs:.0}s)",
                    self.label, self.total
                );
            }
            None => {}
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
