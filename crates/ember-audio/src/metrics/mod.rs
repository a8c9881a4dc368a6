//! Speech quality metrics computed in Rust: SI-SDR, and STOI / ESTOI as pystoi computes them
//! (PESQ has no Rust implementation; `scripts/eval_pesq.py` computes it for README).

mod polyphase;
mod si_sdr;
mod stoi;

pub use polyphase::resample_octave;
pub use si_sdr::si_sdr;
pub use stoi::{estoi, stoi};
