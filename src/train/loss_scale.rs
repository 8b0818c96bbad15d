//! Dynamic loss scaling for f16 runs.
//!
//! Gradients that flow back through f16 matmuls underflow to zero unless the loss is multiplied
//! up first. The scale halves whenever a step's gradients overflow (that step updates nothing)
//! and doubles after a run of steps without overflow, as PyTorch's `GradScaler` does.

use crate::model::Precision;

const INITIAL: f64 = 65536.0;
const GROWTH_INTERVAL: u32 = 2000;
/// Below this, overflow is not a matter of scale: the model's values do not fit in f16.
const MINIMUM: f64 = 1.0;

#[derive(Clone, Debug, PartialEq)]
pub struct LossScale {
    scale: f64,
    dynamic: bool,
    steps_since_overflow: u32,
}

impl LossScale {
    /// A fixed scale of 1 in f32, a dynamic one in f16.
    pub fn new(precision: Precision) -> Self {
        match precision {
            Precision::F32 => Self { scale: 1.0, dynamic: false, steps_since_overflow: 0 },
            Precision::F16 => Self { scale: INITIAL, dynamic: true, steps_since_overflow: 0 },
        }
    }

    /// The scale a checkpoint saved (`saved`), or a new one.
    pub fn resume(precision: Precision, saved: Option<f64>) -> Self {
        let mut scale = Self::new(precision);
        if let (true, Some(saved)) = (scale.dynamic, saved) {
            scale.scale = saved.max(MINIMUM);
        }
        scale
    }

    /// What a checkpoint keeps: the scale, when it changes.
    pub fn saved(&self) -> Option<f64> {
        self.dynamic.then_some(self.scale)
    }

    pub fn value(&self) -> f64 {
        self.scale
    }

    /// Whether a step whose gradients overflowed can be skipped and retried at a lower scale.
    pub fn can_skip_overflow(&self) -> bool {
        self.dynamic && self.scale / 2.0 >= MINIMUM
    }

    /// Records whether a step's gradients overflowed.
    pub fn update(&mut self, overflowed: bool) {
        if !self.dynamic {
            return;
        }
        if overflowed {
            self.scale = (self.scale / 2.0).max(MINIMUM);
            self.steps_since_overflow = 0;
        } else {
            self.steps_since_overflow += 1;
            if self.steps_since_overflow == GROWTH_INTERVAL {
                self.scale *= 2.0;
                self.steps_since_overflow = 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f32_never_scales() {
        let mut s = LossScale::new(Precision::F32);
        s.update(true);
        assert_eq!(s.value(), 1.0);
        assert!(!s.can_skip_overflow());
    }

    #[test]
    fn f16_halves_on_overflow_and_doubles_after_a_clean_run() {
        let mut s = LossScale::new(Precision::F16);
        assert_eq!(s.value(), 65536.0);
        s.update(true);
        assert_eq!(s.value(), 32768.0);
        for _ in 0..GROWTH_INTERVAL - 1 {
            s.update(false);
        }
        assert_eq!(s.value(), 32768.0);
        s.update(true);
        for _ in 0..GROWTH_INTERVAL {
            s.update(false);
        }
        assert_eq!(s.value(), 32768.0, "halved to 16384, then doubled once");
    }

    #[test]
    fn a_resumed_f16_run_continues_at_the_saved_scale() {
        let mut s = LossScale::new(Precision::F16);
        s.update(true);
        assert_eq!(LossScale::resume(Precision::F16, s.saved()).value(), 32768.0);
        assert_eq!(LossScale::resume(Precision::F16, None).value(), 65536.0);
        assert_eq!(LossScale::new(Precision::F32).saved(), None);
    }

    #[test]
    fn f16_stops_skipping_at_the_minimum() {
        let mut s = LossScale::new(Precision::F16);
        for _ in 0..16 {
            assert!(s.can_skip_overflow());
            s.update(true);
        }
        assert_eq!(s.value(), 1.0);
        assert!(!s.can_skip_overflow());
    }
}
