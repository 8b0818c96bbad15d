//! `wgtune bench`: times the trainer's optimizer step on a model folder or a named shape, after
//! warm-up, with a forward / backward / optimizer breakdown, peak memory and, on request, device
//! time by op family.

mod kernel_profile;

pub use kernel_profile::FamilyTime;
use kernel_profile::KernelLog;

use std::path::PathBuf;
use std::time::Instant;

use burn::module::Module;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::data::{Batch, IGNORE};
use crate::device::{ComputeDevice, DeviceChoice};
use crate::error::{Error, Result};
use crate::inspect::{StepPlan, estimate_memory};
use crate::kernels::{KernelShape, force_kernel_shape, kernel_shape};
use crate::method::{Method, trainable_parameters};
use crate::model::{BaseQuant, CausalLm, ForwardOptions, LoraForward, ModelConfig, ModelFolder, Precision, random_model};
use crate::train::{AdamW, LossScale, OptimizerConfig, StepInputs, StepTimings, chunk_rows, optimizer_step};

/// Model shapes known by name, so a benchmark needs no download.
pub const SHAPES: &[&str] = &["smollm2-135m", "llama-1b", "llama-3b", "llama-8b"];

pub fn shape_config(name: &str) -> Result<ModelConfig> {
    let json = match name {
        "smollm2-135m" => {
            r#"{"model_type": "llama", "vocab_size": 49152, "hidden_size": 576, "intermediate_size": 1536,
            "num_hidden_layers": 30, "num_attention_heads": 9, "num_key_value_heads": 3, "rms_norm_eps": 1e-5,
            "rope_theta": 100000.0, "max_position_embeddings": 8192, "tie_word_embeddings": true}"#
        }
        "llama-1b" => {
            r#"{"model_type": "llama", "vocab_size": 128256, "hidden_size": 2048, "intermediate_size": 8192,
            "num_hidden_layers": 16, "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 64,
            "rms_norm_eps": 1e-5, "rope_theta": 500000.0, "max_position_embeddings": 131072, "tie_word_embeddings": true,
            "rope_scaling": {"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
            "original_max_position_embeddings": 8192}}"#
        }
        "llama-3b" => {
            r#"{"model_type": "llama", "vocab_size": 128256, "hidden_size": 3072, "intermediate_size": 8192,
            "num_hidden_layers": 28, "num_attention_heads": 24, "num_key_value_heads": 8, "head_dim": 128,
            "rms_norm_eps": 1e-5, "rope_theta": 500000.0, "max_position_embeddings": 131072, "tie_word_embeddings": true,
            "rope_scaling": {"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
            "original_max_position_embeddings": 8192}}"#
        }
        "llama-8b" => {
            r#"{"model_type": "llama", "vocab_size": 128256, "hidden_size": 4096, "intermediate_size": 14336,
            "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 128,
            "rms_norm_eps": 1e-5, "rope_theta": 500000.0, "max_position_embeddings": 131072, "tie_word_embeddings": false,
            "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
            "original_max_position_embeddings": 8192}}"#
        }
        other => {
            return Err(Error::setting("shape", format!("unknown shape `{other}` ({})", SHAPES.join(", "))));
        }
    };
    ModelConfig::from_json(json, std::path::Path::new(name))
}

#[derive(Clone, Debug)]
pub enum BenchModel {
    Folder(PathBuf),
    /// A named shape with random weights, optionally cut to its first `layers` decoder layers.
    Shape {
        name: String,
        layers: Option<usize>,
    },
}

#[derive(Clone, Debug)]
pub struct BenchConfig {
    pub model: BenchModel,
    pub device: DeviceChoice,
    pub method: Method,
    pub batch_size: usize,
    pub seq_len: usize,
    pub warmup_steps: usize,
    pub steps: usize,
    /// Materialise LoRA weights in every forward, as Burn's built-in LoRA does.
    pub materialize_lora: bool,
    /// Let the frozen projections of one input share one matmul (`CausalLm::share_frozen_bases`).
    pub shared_projections: bool,
    /// Use the fused WGSL kernels (off: Burn's generic operations everywhere).
    pub fused: bool,
    /// Run the kernels in this shape whatever the adapter (`--kernel-shape`).
    pub kernel_shape: Option<KernelShape>,
    pub gradient_checkpointing: bool,
    pub precision: Precision,
    /// LoRA over a base packed in blocks (`--base-quant`).
    pub base_quant: BaseQuant,
    /// Time every kernel launch with CubeCL's profiler and sum by op family (slows the step).
    pub profile_kernels: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct BenchReport {
    pub model: String,
    pub device: String,
    pub method: String,
    pub lora: &'static str,
    pub lora_dropout: f64,
    /// fused or generic, and on wgpu the kernels' shape.
    pub kernels: String,
    /// Whether the frozen projections of one input shared one matmul.
    pub shared_projections: bool,
    pub gradient_checkpointing: bool,
    pub precision: Precision,
    pub base_quant: BaseQuant,
    pub batch_size: usize,
    pub seq_len: usize,
    pub steps: usize,
    pub total_parameters: usize,
    pub trainable_parameters: usize,
    pub tokens_per_second: f64,
    pub ms_per_step: f64,
    pub forward_ms: f64,
    pub backward_ms: f64,
    pub optimizer_ms: f64,
    /// Device memory the allocator reserved at its peak, weights included (GPU backends).
    pub peak_device_bytes: Option<u64>,
    /// Of those, the live allocations (without the pages kept for reuse).
    pub peak_device_in_use_bytes: Option<u64>,
    /// The process's peak resident memory (what the CPU backend uses, and host overhead).
    pub peak_rss_bytes: Option<u64>,
    /// What `wgtune inspect` estimates for the same settings.
    pub estimated_bytes: u64,
    /// Device time per step by op family, largest first (with `profile_kernels`).
    pub kernel_families: Option<Vec<FamilyTime>>,
    /// CubeCL's per-launch log behind `kernel_families`, warm-up steps included.
    pub kernel_log: Option<PathBuf>,
}

pub fn run(config: &BenchConfig) -> Result<BenchReport> {
    let kernel_log = if config.profile_kernels { Some(KernelLog::enable()?) } else { None };
    // Every step runs on this thread, so forcing the shape here reaches all of them.
    let _forced = config.kernel_shape.map(force_kernel_shape);
    let device = ComputeDevice::open(config.device)?;
    device.check_precision(config.precision)?;
    let train_device = device.autodiff();
    device.device.seed(0);
    crate::seed::seed_initial_weights(0);
    let (name, model_config, model) = match &config.model {
        BenchModel::Folder(path) => {
            let folder = ModelFolder::open(path)?;
            let model = folder.load_in(&train_device, config.method.storage_precision(config.precision), config.base_quant)?;
            (path.display().to_string(), folder.config.clone(), model)
        }
        BenchModel::Shape { name, layers } => {
            let mut c = shape_config(name)?;
            let label = match layers {
                Some(0) => return Err(Error::setting("layers", "must be at least 1")),
                Some(n) => {
                    c.num_hidden_layers = c.num_hidden_layers.min(*n);
                    format!("{name} (first {} layers)", c.num_hidden_layers)
                }
                None => name.clone(),
            };
            let model = random_model(&c, &train_device, config.method.storage_precision(config.precision), config.base_quant);
            (label, c, model)
        }
    };
    let mut model: CausalLm = config.method.apply_with(model, config.shared_projections)?;
    let batch = random_batch(&model_config, config.batch_size, config.seq_len);
    let mut optimizer = AdamW::new(&OptimizerConfig::default(), config.fused);
    let lora_dropout = config.method.lora().map_or(0.0, |lora| lora.dropout);
    let options = ForwardOptions {
        lora: LoraForward { dropout: lora_dropout, materialize: config.materialize_lora },
        fused: config.fused,
        // Reseeded per layer, as training does.
        dropout_seed: (lora_dropout > 0.0).then_some(0),
        compute: config.precision,
    };
    let inputs = StepInputs {
        batches: std::slice::from_ref(&batch),
        lr: 1e-5,
        max_grad_norm: 1.0,
        options,
        chunk: chunk_rows(model_config.vocab_size, device.max_buffer_bytes),
        gradient_checkpointing: config.gradient_checkpointing,
        seed: 0,
        // A fixed scale: an overflow fails the benchmark rather than skipping a timed step.
        loss_scale: LossScale::new(config.precision).value(),
        skip_overflow: false,
        class_weights: None,
    };

    let mut step = |model: CausalLm, timings: Option<&mut StepTimings>| {
        optimizer_step(model, &mut optimizer, &inputs, &train_device, timings)
            .map(|o| o.model)
            .map_err(|bad| Error::NonFinite(format!("benchmark step: loss {} grad norm {}", bad.loss, bad.grad_norm)))
    };
    for _ in 0..config.warmup_steps {
        model = step(model, None)?;
    }
    let _ = train_device.sync();
    let profile_start = kernel_log.as_ref().map(KernelLog::settled_len);
    let timed_steps = config.steps.max(1);
    let mut timings = StepTimings::default();
    let started = Instant::now();
    for _ in 0..timed_steps {
        model = step(model, Some(&mut timings))?;
    }
    let _ = train_device.sync();
    let elapsed = started.elapsed().as_secs_f64();
    // Only CubeCL's backends (wgpu here) have the profiler; the CPU backend logs nothing.
    let on_wgpu = crate::kernels::is_wgpu(&device.device);
    let kernel_log = kernel_log.filter(|_| on_wgpu);
    let kernel_families = match (&kernel_log, profile_start) {
        (Some(log), Some(from)) => Some(log.families_since(from, timed_steps)?),
        _ => None,
    };
    let steps = timed_steps as f64;
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0 / steps;

    Ok(BenchReport {
        model: name,
        device: device.description.clone(),
        method: config.method.name().to_string(),
        lora: if config.materialize_lora { "materialized" } else { "factored" },
        lora_dropout,
        kernels: match (config.fused, on_wgpu) {
            (false, _) => "generic".into(),
            (true, true) => format!("fused, {}-shaped", kernel_shape()),
            (true, false) => "fused".into(),
        },
        shared_projections: config.shared_projections,
        gradient_checkpointing: config.gradient_checkpointing,
        precision: config.precision,
        base_quant: config.base_quant,
        batch_size: config.batch_size,
        seq_len: config.seq_len,
        steps: timed_steps,
        total_parameters: model.num_params(),
        trainable_parameters: trainable_parameters(&model),
        tokens_per_second: (config.batch_size * config.seq_len) as f64 * steps / elapsed,
        ms_per_step: elapsed * 1000.0 / steps,
        forward_ms: ms(timings.forward),
        backward_ms: ms(timings.backward),
        optimizer_ms: ms(timings.optimizer),
        peak_device_bytes: timings.peak_reserved_bytes,
        peak_device_in_use_bytes: timings.peak_in_use_bytes,
        peak_rss_bytes: peak_rss(),
        estimated_bytes: estimate_memory(
            &model_config,
            &config.method,
            config.batch_size,
            config.seq_len,
            StepPlan {
                base_quant: config.base_quant,
                ..StepPlan::new(config.fused, on_wgpu, config.gradient_checkpointing, config.precision)
            },
        )
        .total,
        kernel_families,
        kernel_log: kernel_log.map(|log| log.path().to_path_buf()),
    })
}

/// Random tokens with every position a target, like packed training data.
fn random_batch(config: &ModelConfig, batch_size: usize, seq_len: usize) -> Batch {
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    let input_ids: Vec<i64> = (0..batch_size * seq_len).map(|_| rng.random_range(0..config.vocab_size as i64)).collect();
    let targets = (0..batch_size * seq_len).map(|i| if (i + 1) % seq_len == 0 { IGNORE } else { input_ids[i + 1] }).collect();
    Batch { input_ids, targets, batch_size, len: seq_len, labels: Vec::new() }
}

/// Peak resident set size of this process (Linux), from `/proc/self/status`.
fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
