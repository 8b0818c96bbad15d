//! Starting points: a few named sets of hyperparameters ("quick test", "balanced", "best
//! quality") sized to the model and the dataset, so that a first run trains visibly instead of
//! stopping after a handful of steps at a learning rate meant for 7B models.

use crate::method::{LoraSettings, Method};
use crate::train::{ScheduleKind, TrainConfig};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Preset {
    /// A short run that shows the pipeline works and the loss moves.
    QuickTest,
    /// What most runs should start from.
    Balanced,
    /// A larger adapter, more passes over the data, a gentler learning rate.
    BestQuality,
}

/// The hyperparameters a preset chooses.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PresetSettings {
    pub rank: usize,
    pub alpha: f64,
    pub lr: f64,
    pub epochs: usize,
    /// Set only by the quick test, which stops early whatever the epochs.
    pub max_steps: Option<usize>,
    pub eval_every: usize,
}

/// LoRA's usual learning rate for a 7B model; smaller models take a larger one.
const LR_AT_7B: f64 = 2e-4;

impl Preset {
    pub const ALL: [Preset; 3] = [Self::QuickTest, Self::Balanced, Self::BestQuality];

    pub fn name(self) -> &'static str {
        match self {
            Self::QuickTest => "quick test",
            Self::Balanced => "balanced",
            Self::BestQuality => "best quality",
        }
    }

    /// The fewest optimizer steps the preset aims for, however small the dataset: a few epochs
    /// of a 20-record file are not enough for anything to be learned.
    fn min_steps(self) -> usize {
        match self {
            Self::QuickTest => 20,
            Self::Balanced => 60,
            Self::BestQuality => 150,
        }
    }

    /// The settings for a model of `parameters` and `examples` training records, in batches of
    /// `batch_size`.
    pub fn settings(self, parameters: usize, examples: usize, batch_size: usize) -> PresetSettings {
        // A learning rate that grows as the model shrinks, as the LoRA literature's choices do
        // (2e-4 at 7B, about 1e-3 at 100–300M), capped at 10× the 7B rate.
        let size_factor = (7e9 / parameters.max(1) as f64).sqrt().clamp(1.0, 10.0);
        let lr = LR_AT_7B * size_factor;
        let steps_per_epoch = examples.div_ceil(batch_size.max(1)).max(1);
        let epochs_for = |min_epochs: usize| min_epochs.max(self.min_steps().div_ceil(steps_per_epoch)).min(50);
        match self {
            Self::QuickTest => PresetSettings { rank: 8, alpha: 16.0, lr, epochs: 1, max_steps: Some(self.min_steps()), eval_every: 10 },
            Self::Balanced => {
                let epochs = epochs_for(3);
                PresetSettings { rank: 16, alpha: 32.0, lr, epochs, max_steps: None, eval_every: eval_every(epochs * steps_per_epoch) }
            }
            Self::BestQuality => {
                let epochs = epochs_for(5);
                PresetSettings {
                    rank: 32,
                    alpha: 64.0,
                    lr: lr / 2.0,
                    epochs,
                    max_steps: None,
                    eval_every: eval_every(epochs * steps_per_epoch),
                }
            }
        }
    }

    /// Sets LoRA with the preset's rank, alpha and learning rate, its epochs and evaluations, a
    /// cosine schedule with a short warm-up; the rest of `config` is left as it is. Returns what
    /// it set.
    pub fn apply(self, config: &mut TrainConfig, parameters: usize, examples: usize) -> PresetSettings {
        let s = self.settings(parameters, examples, config.batch_size);
        let lora = match &config.method {
            Method::Lora(lora) => lora.clone(),
            _ => LoraSettings::default(),
        };
        config.method = Method::Lora(LoraSettings { rank: s.rank, alpha: s.alpha, ..lora });
        config.optim.lr = s.lr;
        config.optim.schedule = ScheduleKind::Cosine;
        config.optim.warmup_steps = 0;
        config.optim.warmup_ratio = 0.05;
        config.epochs = s.epochs;
        config.max_steps = s.max_steps;
        config.eval_every = s.eval_every;
        s
    }
}

/// About ten evaluations over a run of `steps`.
fn eval_every(steps: usize) -> usize {
    (steps / 10).max(5)
}

impl std::fmt::Display for Preset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Preset {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "quick" | "quick-test" => Ok(Self::QuickTest),
            "balanced" => Ok(Self::Balanced),
            "best" | "best-quality" => Ok(Self::BestQuality),
            other => Err(format!("unknown preset `{other}` (quick, balanced, best)")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_dataset_gets_enough_steps_and_a_small_model_a_larger_rate() {
        // SmolLM2-135M on the 20-record demo set, 4 per batch: 5 steps an epoch.
        let s = Preset::Balanced.settings(134_515_008, 20, 4);
        assert_eq!((s.rank, s.epochs, s.max_steps, s.eval_every), (16, 12, None, 6));
        assert!((s.lr - 2e-4 * (7e9f64 / 134_515_008.0).sqrt()).abs() < 1e-12 && s.lr > 1e-3, "{}", s.lr);
        // An 8B model on 10 000 records keeps the 7B rate and three epochs.
        let s = Preset::Balanced.settings(8_000_000_000, 10_000, 4);
        assert_eq!((s.lr, s.epochs), (2e-4, 3));
        let best = Preset::BestQuality.settings(134_515_008, 20, 4);
        assert_eq!((best.rank, best.epochs), (32, 30));
        assert_eq!(Preset::QuickTest.settings(1_000_000, 5, 4).max_steps, Some(20));
        // A tiny model's rate is capped at ten times the 7B one.
        assert_eq!(Preset::Balanced.settings(1_000, 100, 4).lr, 2e-3);
    }

    #[test]
    fn applying_a_preset_keeps_the_rest_of_the_settings() {
        let mut config = TrainConfig { batch_size: 8, seed: 7, ..Default::default() };
        config.method = Method::Full;
        Preset::BestQuality.apply(&mut config, 500_000_000, 400);
        assert_eq!((config.batch_size, config.seed), (8, 7));
        assert!(matches!(&config.method, Method::Lora(l) if l.rank == 32 && l.alpha == 64.0));
        assert_eq!(config.epochs, 5.max(150usize.div_ceil(50)));
        assert_eq!("best".parse::<Preset>(), Ok(Preset::BestQuality));
    }
}
