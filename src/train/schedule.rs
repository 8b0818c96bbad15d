//! Learning-rate schedules with linear warm-up, as transformers defines them: the rate used for
//! optimizer step `s` (0-based) is `lr · λ(s)`.

use super::config::{OptimizerConfig, ScheduleKind};

#[derive(Clone, Debug)]
pub struct Schedule {
    base: f64,
    kind: ScheduleKind,
    warmup: usize,
    total: usize,
}

impl Schedule {
    pub fn new(config: &OptimizerConfig, total_steps: usize) -> Self {
        let warmup = if config.warmup_steps > 0 { config.warmup_steps } else { (config.warmup_ratio * total_steps as f64).ceil() as usize };
        Self { base: config.lr, kind: config.schedule, warmup, total: total_steps.max(1) }
    }

    pub fn lr(&self, step: usize) -> f64 {
        self.base * self.factor(step)
    }

    fn factor(&self, step: usize) -> f64 {
        if step < self.warmup {
            return step as f64 / self.warmup.max(1) as f64;
        }
        let decay_steps = self.total.saturating_sub(self.warmup).max(1) as f64;
        let progress = (step - self.warmup) as f64 / decay_steps;
        match self.kind {
            ScheduleKind::Constant => 1.0,
            ScheduleKind::Linear => (1.0 - progress).max(0.0),
            ScheduleKind::Cosine => (0.5 * (1.0 + (std::f64::consts::PI * progress).cos())).max(0.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(kind: ScheduleKind, warmup: usize, total: usize) -> Schedule {
        let config = OptimizerConfig { lr: 1.0, schedule: kind, warmup_steps: warmup, warmup_ratio: 0.0, ..Default::default() };
        Schedule::new(&config, total)
    }

    #[test]
    fn matches_transformers_cosine_with_warmup() {
        // get_cosine_schedule_with_warmup(opt, num_warmup_steps=2, num_training_steps=10)
        let s = schedule(ScheduleKind::Cosine, 2, 10);
        let expected = [0.0, 0.5, 1.0, 0.961_939_766, 0.853_553_390, 0.691_341_716, 0.5, 0.308_658_283, 0.146_446_609, 0.038_060_233];
        for (step, e) in expected.iter().enumerate() {
            assert!((s.lr(step) - e).abs() < 1e-8, "step {step}: {} vs {e}", s.lr(step));
        }
    }

    #[test]
    fn linear_decays_to_zero_and_constant_stays() {
        let s = schedule(ScheduleKind::Linear, 0, 4);
        assert_eq!([s.lr(0), s.lr(1), s.lr(2), s.lr(4)], [1.0, 0.75, 0.5, 0.0]);
        let c = schedule(ScheduleKind::Constant, 1, 4);
        assert_eq!([c.lr(0), c.lr(1), c.lr(3)], [0.0, 1.0, 1.0]);
    }
}
