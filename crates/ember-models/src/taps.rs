//! Named intermediate outputs of a forward pass: what parity checks compare against the
//! official code's hooks, and what feature extractors read. Off by default and free then.

use candle_core::Tensor;

#[derive(Debug, Default)]
pub struct Taps(Option<Vec<(String, Tensor)>>);

impl Taps {
    /// Collects nothing.
    pub fn off() -> Self {
        Self(None)
    }

    /// Collects every tensor offered.
    pub fn on() -> Self {
        Self(Some(Vec::new()))
    }

    /// Keeps `t` under the name `name()` (built only when collecting).
    pub fn put(&mut self, name: impl FnOnce() -> String, t: &Tensor) {
        if let Some(kept) = &mut self.0 {
            kept.push((name(), t.clone()));
        }
    }

    /// Whether tensors are being collected (to skip work that only feeds the taps).
    pub fn is_on(&self) -> bool {
        self.0.is_some()
    }

    pub fn into_vec(self) -> Vec<(String, Tensor)> {
        self.0.unwrap_or_default()
    }
}
