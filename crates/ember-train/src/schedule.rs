//! Learning-rate schedules evaluated per optimizer step: linear warm-up, then cosine decay
//! (timm's `CosineLRScheduler` without restarts) or step decay (`MultiStepLR`).

#[derive(Debug, Clone, PartialEq)]
pub enum Decay {
    /// From the base rate to `min_lr` along half a cosine.
    Cosine {
        min_lr: f64,
    },
    /// Multiply by `gamma` at each milestone step.
    Step {
        milestones: Vec<usize>,
        gamma: f64,
    },
    Constant,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    pub base_lr: f64,
    pub warmup_steps: usize,
    /// The warm-up starts at `base_lr * warmup_start`.
    pub warmup_start: f64,
    pub total_steps: usize,
    pub decay: Decay,
}

impl Schedule {
    pub fn lr(&self, step: usize) -> f64 {
        if step < self.warmup_steps {
            let t = step as f64 / self.warmup_steps as f64;
            return self.base_lr * (self.warmup_start + (1.0 - self.warmup_start) * t);
        }
        match &self.decay {
            Decay::Cosine { min_lr } => {
                let span = self.total_steps.saturating_sub(self.warmup_steps).max(1) as f64;
                let t = ((step - self.warmup_steps) as f64 / span).min(1.0);
                min_lr + (self.base_lr - min_lr) * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())
            }
            Decay::Step { milestones, gamma } => {
                let passed = milestones.iter().filter(|&&m| step >= m).count();
                self.base_lr * gamma.powi(passed as i32)
            }
            Decay::Constant => self.base_lr,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_then_cosine() {
        let s = Schedule {
            base_lr: 0.1,
            warmup_steps: 10,
            warmup_start: 0.0,
            total_steps: 110,
            decay: Decay::Cosine { min_lr: 0.0 },
        };
        assert_eq!(s.lr(0), 0.0);
        assert!((s.lr(5) - 0.05).abs() < 1e-12);
        assert!((s.lr(10) - 0.1).abs() < 1e-12);
        assert!((s.lr(60) - 0.05).abs() < 1e-12);
        assert!(s.lr(110).abs() < 1e-12);
        assert!(s.lr(500).abs() < 1e-12);
    }

    #[test]
    fn step_decay_at_milestones() {
        let s = Schedule {
            base_lr: 1.0,
            warmup_steps: 0,
            warmup_start: 0.0,
            total_steps: 100,
            decay: Decay::Step {
                milestones: vec![30, 60],
                gamma: 0.1,
            },
        };
        assert_eq!(s.lr(29), 1.0);
        assert!((s.lr(30) - 0.1).abs() < 1e-12);
        assert!((s.lr(99) - 0.01).abs() < 1e-12);
    }
}
