//! A training run's settings: what `run.toml` holds and what the CLI flags and the GUI set.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::data::DataConfig;
use crate::device::DeviceChoice;
use crate::error::{Error, Result};
use crate::method::Method;
use crate::model::{BaseQuant, Precision};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScheduleKind {
    #[default]
    Cosine,
    Linear,
    Constant,
}

impl std::str::FromStr for ScheduleKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "cosine" => Ok(Self::Cosine),
            "linear" => Ok(Self::Linear),
            "constant" => Ok(Self::Constant),
            other => Err(format!("unknown schedule `{other}` (cosine, linear, constant)")),
        }
    }
}

/// What the model learns: to continue text, or to label it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Task {
    /// Next-token prediction on the replies (or all text) of the records.
    #[default]
    CausalLm,
    /// A `score` head over the decoder picks one class per record (`text`, `label`).
    Classification,
}

impl Task {
    pub fn name(self) -> &'static str {
        match self {
            Self::CausalLm => "causal-lm",
            Self::Classification => "classification",
        }
    }
}

impl std::fmt::Display for Task {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Task {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "causal-lm" => Ok(Self::CausalLm),
            "classification" => Ok(Self::Classification),
            other => Err(format!("unknown task `{other}` (causal-lm, classification)")),
        }
    }
}

/// How much each class counts in a classifier's loss.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClassWeights {
    /// Every example counts the same.
    #[default]
    None,
    /// Each class weighs `examples / (classes × its examples)` (scikit-learn's "balanced"), so a
    /// rare class counts as much in total as a common one.
    Balanced,
}

impl ClassWeights {
    /// The weight of each class from the training set's count of each; `None` for equal weights.
    pub fn weights(self, counts: &[usize]) -> Option<Vec<f32>> {
        match self {
            Self::None => None,
            Self::Balanced => {
                let total: usize = counts.iter().sum();
                Some(counts.iter().map(|&c| if c == 0 { 0.0 } else { total as f32 / (counts.len() * c) as f32 }).collect())
            }
        }
    }
}

impl std::str::FromStr for ClassWeights {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "none" => Ok(Self::None),
            "balanced" => Ok(Self::Balanced),
            other => Err(format!("unknown class weighting `{other}` (none, balanced)")),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OptimizerConfig {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
    /// Clip the global gradient norm to this; 0 disables clipping.
    pub max_grad_norm: f64,
    pub schedule: ScheduleKind,
    /// Warm-up steps; when 0, `warmup_ratio` of the total steps.
    pub warmup_steps: usize,
    pub warmup_ratio: f64,
}

impl Default for OptimizerConfig {
    fn default() -> Self {
        Self {
            lr: 2e-4,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            max_grad_norm: 1.0,
            schedule: ScheduleKind::Cosine,
            warmup_steps: 0,
            warmup_ratio: 0.03,
        }
    }
}

/// Everything a run needs. Serialises to the `run.toml` the CLI reads with `--config` and the
/// GUI saves; a copy is written into every run directory.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// The Hugging Face model folder to fine-tune.
    pub model: PathBuf,
    /// Where checkpoints, metrics and the final adapter or weights go.
    pub output_dir: PathBuf,
    pub task: Task,
    /// For classification: how much each class counts in the loss.
    pub class_weights: ClassWeights,
    pub device: DeviceChoice,
    pub seed: u64,
    pub batch_size: usize,
    pub grad_accumulation: usize,
    pub epochs: usize,
    /// Stop after this many optimizer steps, whatever `epochs` says.
    pub max_steps: Option<usize>,
    /// Evaluate on the validation set before training, every this many steps and at the end; 0: only at the end.
    pub eval_every: usize,
    /// At each evaluation, answer this many validation records greedily and score the answers
    /// against their replies (exact match, token F1); 0: the loss alone.
    pub eval_generations: usize,
    /// Write a checkpoint every this many steps (and at the end); 0 only at the end.
    pub save_every: usize,
    /// How many checkpoints to keep; older ones are deleted.
    pub keep_checkpoints: usize,
    /// Materialise LoRA weights in every forward (Burn's default behaviour); for measurements.
    pub materialize_lora: bool,
    /// Use the fused WGSL kernels on wgpu devices; off runs Burn's generic operations.
    pub fused_kernels: bool,
    /// Keep only each decoder layer's input and recompute the layer in the backward pass.
    pub gradient_checkpointing: bool,
    /// The precision of the weight matrices' matmuls (see [`Precision`]).
    pub precision: Precision,
    /// LoRA over a frozen base packed in blocks of int8 or 4-bit numbers (see [`BaseQuant`]).
    pub base_quant: BaseQuant,
    pub data: DataConfig,
    pub method: Method,
    pub optim: OptimizerConfig,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            model: PathBuf::new(),
            output_dir: PathBuf::from("runs/latest"),
            task: Task::CausalLm,
            class_weights: ClassWeights::None,
            device: DeviceChoice::Auto,
            seed: 42,
            batch_size: 4,
            grad_accumulation: 1,
            epochs: 1,
            max_steps: None,
            eval_every: 0,
            eval_generations: 4,
            save_every: 100,
            keep_checkpoints: 2,
            materialize_lora: false,
            fused_kernels: true,
            gradient_checkpointing: false,
            precision: Precision::F32,
            base_quant: BaseQuant::None,
            data: DataConfig::default(),
            method: Method::default(),
            optim: OptimizerConfig::default(),
        }
    }
}

impl TrainConfig {
    pub fn from_toml_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        toml::from_str(&text).map_err(|e| Error::invalid_file(path, e.to_string()))
    }

    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_default()
    }

    pub fn save_toml(&self, path: &Path) -> Result<()> {
        crate::fsutil::write_atomic(path, self.to_toml().as_bytes())
    }

    /// Checks the settings that do not need the model or the data.
    pub fn validate(&self) -> Result<()> {
        if self.model.as_os_str().is_empty() {
            return Err(Error::setting("model", "choose a model folder"));
        }
        if self.data.train_file.as_os_str().is_empty() {
            return Err(Error::setting("data.train_file", "choose a dataset file"));
        }
        if self.batch_size == 0 {
            return Err(Error::setting("batch_size", "must be at least 1"));
        }
        if self.grad_accumulation == 0 {
            return Err(Error::setting("grad_accumulation", "must be at least 1"));
        }
        if self.epochs == 0 && self.max_steps.is_none() {
            return Err(Error::setting("epochs", "must be at least 1 (or set max_steps)"));
        }
        if !(self.optim.lr > 0.0 && self.optim.lr.is_finite()) {
            return Err(Error::setting("optim.lr", "must be a positive number"));
        }
        if !(0.0..1.0).contains(&self.optim.beta1) || !(0.0..1.0).contains(&self.optim.beta2) {
            return Err(Error::setting("optim.beta1/beta2", "must be in [0, 1)"));
        }
        if !(0.0..1.0).contains(&self.optim.warmup_ratio) {
            return Err(Error::setting("optim.warmup_ratio", "must be in [0, 1)"));
        }
        if self.max_steps == Some(0) {
            return Err(Error::setting("max_steps", "must be at least 1"));
        }
        let non_negative = [("optim.weight_decay", self.optim.weight_decay), ("optim.max_grad_norm", self.optim.max_grad_norm)];
        for (field, value) in non_negative {
            if !(value >= 0.0 && value.is_finite()) {
                return Err(Error::setting(field, format!("must be 0 or a positive number, not {value}")));
            }
        }
        if !(self.optim.eps > 0.0 && self.optim.eps.is_finite()) {
            return Err(Error::setting("optim.eps", format!("must be a small positive number, not {}", self.optim.eps)));
        }
        if let Some(lora) = self.method.lora() {
            lora.validate()?;
        }
        if self.class_weights != ClassWeights::None && self.task != Task::Classification {
            return Err(Error::setting("class_weights", "weighs the classes of a classifier: use it with --task classification"));
        }
        if self.task == Task::Classification && self.data.packing {
            return Err(Error::setting("data.packing", "joins records into one sequence, but a classifier reads each record alone"));
        }
        if self.base_quant != BaseQuant::None && self.method.lora().is_none() {
            return Err(Error::setting(
                "base_quant",
                format!(
                    "{} packs a frozen base, and only LoRA freezes it: {} fine-tuning trains base weights (use --base-quant none, or LoRA)",
                    self.base_quant,
                    self.method.name()
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_round_trips() {
        let mut config = TrainConfig { model: "models/smol".into(), ..Default::default() };
        config.data.train_file = "data.jsonl".into();
        config.max_steps = Some(10);
        let text = config.to_toml();
        let back: TrainConfig = toml::from_str(&text).unwrap();
        assert_eq!(back, config);
        assert!(text.contains("[method]"), "{text}");
        assert!(text.contains("type = \"lora\""), "{text}");
    }

    #[test]
    fn unknown_fields_are_named() {
        let err = toml::from_str::<TrainConfig>("batch_sise = 3").unwrap_err().to_string();
        assert!(err.contains("batch_sise"), "{err}");
    }

    #[test]
    fn balanced_class_weights_follow_scikit_learn() {
        // compute_class_weight("balanced", classes=[0, 1, 2], y=[0]*6 + [1]*3 + [2]): 10 / (3 × count).
        let w = ClassWeights::Balanced.weights(&[6, 3, 1]).unwrap();
        let expected = [10.0 / 18.0, 10.0 / 9.0, 10.0 / 3.0];
        assert!(w.iter().zip(expected).all(|(a, b)| (a - b).abs() < 1e-6), "{w:?}");
        assert_eq!(ClassWeights::None.weights(&[6, 3, 1]), None);
        let c: TrainConfig = toml::from_str("task = \"classification\"\nclass_weights = \"balanced\"\n").unwrap();
        assert_eq!((c.task, c.class_weights), (Task::Classification, ClassWeights::Balanced));
    }

    #[test]
    fn partial_methods_parse() {
        let c: TrainConfig = toml::from_str("[method]\ntype = \"top_layers\"\nlayers = 2\n").unwrap();
        assert_eq!(c.method, Method::TopLayers { layers: 2 });
    }
}
