//! What a model and a method amount to before any weight is loaded: parameter counts and an
//! estimate of training memory. The GUI recomputes this as sliders move, so it is pure
//! arithmetic on `config.json`.

use serde::Serialize;

use crate::error::{Error, Result};
use crate::method::{Method, resolve_targets};
use crate::model::{BaseQuant, ModelConfig, Precision};
use crate::train::TrainConfig;

mod bindings;

pub use bindings::check_bindings;

/// Every parameter of the model: module path and shape `[in, out]` for linears.
pub fn parameter_shapes(c: &ModelConfig) -> Vec<(String, Vec<usize>)> {
    let h = c.hidden_size;
    let q = c.num_attention_heads * c.head_dim;
    let kv = c.num_key_value_heads * c.head_dim;
    let i = c.intermediate_size;
    let mut out = vec![("embed_tokens.weight".to_string(), vec![c.vocab_size, h])];
    for l in 0..c.num_hidden_layers {
        let p = |name: &str| format!("layers.{l}.{name}");
        out.push((p("input_layernorm.weight"), vec![h]));
        let fused = [
            ("self_attn.qkv_proj", h, q + 2 * kv, c.qkv_bias),
            ("self_attn.o_proj", q, h, c.o_bias),
            ("mlp.gate_up_proj", h, 2 * i, c.mlp_bias),
            ("mlp.down_proj", i, h, c.mlp_bias),
        ];
        let separate = [
            ("self_attn.q_proj", h, q, c.qkv_bias),
            ("self_attn.k_proj", h, kv, c.qkv_bias),
            ("self_attn.v_proj", h, kv, c.qkv_bias),
            ("self_attn.o_proj", q, h, c.o_bias),
            ("mlp.gate_proj", h, i, c.mlp_bias),
            ("mlp.up_proj", h, i, c.mlp_bias),
            ("mlp.down_proj", i, h, c.mlp_bias),
        ];
        let projections = if c.fused_projections { &fused[..] } else { &separate[..] };
        for &(name, d_in, d_out, bias) in projections {
            out.push((p(&format!("{name}.weight")), vec![d_in, d_out]));
            if bias {
                out.push((p(&format!("{name}.bias")), vec![d_out]));
            }
        }
        if c.qk_norm {
            out.push((p("self_attn.q_norm.weight"), vec![c.head_dim]));
            out.push((p("self_attn.k_norm.weight"), vec![c.head_dim]));
        }
        out.push((p("post_attention_layernorm.weight"), vec![h]));
        if c.sandwich_norms {
            out.push((p("pre_feedforward_layernorm.weight"), vec![h]));
            out.push((p("post_feedforward_layernorm.weight"), vec![h]));
        }
    }
    out.push(("norm.weight".to_string(), vec![h]));
    if !c.tie_word_embeddings {
        out.push(("lm_head.weight".to_string(), vec![h, c.vocab_size]));
    }
    out
}

/// Parameters that train under `method` (LoRA factors for LoRA).
pub fn trainable_count(c: &ModelConfig, method: &Method) -> usize {
    let shapes = parameter_shapes(c);
    let numel = |s: &Vec<usize>| s.iter().product::<usize>();
    match method {
        Method::Lora(lora) => shapes
            .iter()
            .filter(|(path, shape)| {
                shape.len() == 2 && resolve_targets(&lora.target_modules, c).iter().any(|t| path.ends_with(&format!(".{t}.weight")))
            })
            .map(|(_, shape)| lora.rank * (shape[0] + shape[1]))
            .sum(),
        _ => shapes.iter().filter(|(path, _)| trains_whole(c, method, path)).map(|(_, s)| numel(s)).sum(),
    }
}

/// Whether `method` trains the parameter at `path` itself (not through an adapter).
pub fn trains_whole(c: &ModelConfig, method: &Method, path: &str) -> bool {
    match method {
        Method::Lora(_) => false,
        Method::Full => true,
        Method::TopLayers { layers } => {
            let first = c.num_hidden_layers.saturating_sub(*layers);
            path.strip_prefix("layers.")
                .and_then(|rest| rest.split('.').next())
                .and_then(|n| n.parse::<usize>().ok())
                .is_some_and(|n| n >= first)
        }
        Method::Modules { names } => names.iter().any(|n| format!(".{path}.").contains(&format!(".{n}."))),
    }
}

/// Bytes of device memory a training step needs, by what they hold. The gradients fill in as the
/// backward pass frees the activations, so the peak holds the larger of the two, not both.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct MemoryEstimate {
    /// The model's weights in f32.
    pub weights: u64,
    /// AdamW's two moments, for the trainable parameters.
    pub moments: u64,
    /// One gradient per trainable parameter.
    pub gradients: u64,
    /// Activations kept for the backward pass.
    pub activations: u64,
    /// Logits of the target positions and their softmax, kept for the backward pass (none with
    /// the fused loss).
    pub logits: u64,
    /// weights + moments + max(gradients, activations + logits).
    pub total: u64,
}

/// How a training step runs, which decides what it keeps for the backward pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StepPlan {
    /// Attention that keeps only its output and log-sum-exp for the backward pass, and SwiGLU that
    /// recomputes its intermediates there (WGSL kernels on wgpu, passes on every core on the CPU).
    pub fused_layers: bool,
    /// Cross-entropy with its gradients computed in the forward pass, a chunk of logits at a time.
    pub fused_loss: bool,
    /// Gradient checkpointing: one layer's activations at a time, plus every layer's input.
    pub recompute_layers: bool,
    /// Matmuls in f16 (`Precision::F16`): frozen weight matrices stored in f16, trained ones as
    /// f32 masters plus the f16 copies the step's matmuls keep for the backward pass.
    pub f16_matmuls: bool,
    /// LoRA over a base whose decoder projections are packed in blocks.
    pub base_quant: BaseQuant,
    /// A packed base packs the embedding and the output projection too (on wgpu).
    pub packed_vocabulary: bool,
    /// LoRA dropout's products drop their input out again in the backward pass instead of keeping
    /// the dropped-out copy (fused, on wgpu: `kernels::dropout_matmul`).
    pub dropout_recomputed: bool,
}

impl StepPlan {
    /// What a run's settings select on a device.
    pub fn new(fused_kernels: bool, on_wgpu: bool, gradient_checkpointing: bool, precision: Precision) -> Self {
        Self {
            fused_layers: fused_kernels,
            fused_loss: fused_kernels,
            recompute_layers: gradient_checkpointing,
            f16_matmuls: precision == Precision::F16,
            base_quant: BaseQuant::None,
            packed_vocabulary: on_wgpu,
            dropout_recomputed: fused_kernels && on_wgpu,
        }
    }

    /// The plan of a run's settings (`config`) on a device.
    pub fn of(config: &TrainConfig, on_wgpu: bool) -> Self {
        Self { base_quant: config.base_quant, ..Self::new(config.fused_kernels, on_wgpu, config.gradient_checkpointing, config.precision) }
    }
}

/// Device bytes and parameters of the matrices packed as `quant`, as the loader packs them: the
/// decoder layers' projections (those whose sides allow it) and, with `vocabulary`, the output
/// projection and the embedding, which takes no device memory when the head is its own (it is
/// looked up on the host) and is the head when tied; `None` for a dense base.
fn packed_matrices(c: &ModelConfig, quant: BaseQuant, vocabulary: bool) -> Option<(u64, u64)> {
    quant.bits()?;
    let packed = parameter_shapes(c).into_iter().filter_map(|(path, shape)| {
        let vocabulary_matrix = path == "lm_head.weight" || path == "embed_tokens.weight";
        let packable = path.ends_with("_proj.weight") || (vocabulary && vocabulary_matrix);
        if !packable {
            return None;
        }
        // Rows and columns in the checkpoint's orientation (projections are stored transposed).
        let (rows, cols) = if path == "embed_tokens.weight" { (shape[0], shape[1]) } else { (shape[1], shape[0]) };
        if !BaseQuant::can_pack(rows, cols) {
            return None;
        }
        let on_device = path != "embed_tokens.weight" || c.tie_word_embeddings;
        let bytes = if on_device { quant.packed_bytes(rows, cols).unwrap_or(0) as u64 } else { 0 };
        Some((bytes, (rows * cols) as u64))
    });
    Some(packed.fold((0, 0), |(bytes, params), (b, p)| (bytes + b, params + p)))
}

/// The parts of a step that take Burn's tensor operations because the fused kernels do not cover
/// the family's variation of them, for people: empty when every fused kernel applies.
pub fn generic_paths(c: &ModelConfig) -> Vec<&'static str> {
    let mut out = Vec::new();
    if c.attn_logit_softcapping.is_some() {
        out.push("attention (soft-capped scores)");
    }
    if !c.activation.is_fused() {
        out.push("MLP activation (GeGLU)");
    }
    if c.final_logit_softcapping.is_some() {
        out.push("loss (soft-capped logits)");
    }
    out
}

/// Values per token and layer that LoRA dropout keeps: each adapter's product keeps its dropped-out
/// input for its `a`'s gradient (unless it drops its input out again in the backward pass, as on
/// wgpu). The projections of one input (q, k, v; gate, up) keep that input once without dropout,
/// so dropout adds one copy per further adapter; o_proj's input (the attention's output, which the
/// attention keeps anyway) one copy; down_proj's input is kept for its adapter alone either way.
/// Burn's dropout (generic kernels) keeps each adapter's mask too. Measured in BENCHMARKS.md
/// ("The CPU ahead of PyTorch").
fn lora_dropout_inputs(c: &ModelConfig, method: &Method, plan: StepPlan) -> u64 {
    let Some(lora) = method.lora().filter(|lora| lora.dropout > 0.0 && !plan.dropout_recomputed) else {
        return 0;
    };
    let targets = resolve_targets(&lora.target_modules, c);
    let adapted = |names: &[&str]| names.iter().filter(|name| targets.iter().any(|t| t == *name)).count() as u64;
    let (h, i) = (c.hidden_size as u64, c.intermediate_size as u64);
    let q = (c.num_attention_heads * c.head_dim) as u64;
    let (attention, mlp) = (adapted(&["q_proj", "k_proj", "v_proj"]), adapted(&["gate_proj", "up_proj"]));
    let (o, down) = (adapted(&["o_proj"]), adapted(&["down_proj"]));
    let copies = (attention.saturating_sub(1) + mlp.saturating_sub(1)) * h + o * q;
    let masks = if plan.fused_layers { 0 } else { (attention + mlp) * h + o * q + down * i };
    copies + masks
}

/// Estimates training memory for `batch` sequences of `seq_len` tokens. Checked against measured
/// peaks in BENCHMARKS.md (and the test below).
pub fn estimate_memory(c: &ModelConfig, method: &Method, batch: usize, seq_len: usize, plan: StepPlan) -> MemoryEstimate {
    const F32: u64 = 4;
    let total_params = c.num_parameters() as u64;
    let trainable = trainable_count(c, method) as u64;
    let tokens = (batch * seq_len) as u64;
    let (h, i) = (c.hidden_size as u64, c.intermediate_size as u64);
    let q = (c.num_attention_heads * c.head_dim) as u64;
    let kv = (c.num_key_value_heads * c.head_dim) as u64;
    let heads = c.num_attention_heads as u64;
    let rank = method.lora().map(|l| l.rank as u64 * l.target_modules.len() as u64).unwrap_or(0);
    // Per token and layer: norms and residuals, projections and their rotations, the MLP's
    // intermediate tensors (gate, up, their product; unfused also σ(gate) and silu(gate)), LoRA's
    // low-rank products, and attention scores with their softmax (fused, only the log-sum-exp
    // the backward pass recomputes them from).
    let mlp = if plan.fused_layers && c.activation.is_fused() { 3 * i } else { 5 * i };
    let fused_attention = plan.fused_layers && c.attn_logit_softcapping.is_none();
    let attention = if fused_attention { heads } else { 2 * heads * seq_len as u64 };
    let per_token_layer = 6 * h + 3 * q + 4 * kv + mlp + rank + attention + lora_dropout_inputs(c, method, plan);
    let layers = c.num_hidden_layers as u64;
    let activations = if plan.recompute_layers {
        // Every layer's input, one layer's activations, and the gradient flowing between layers.
        tokens * (layers * h + per_token_layer + h) * F32
    } else {
        tokens * per_token_layer * layers * F32
    };
    let logits = if plan.fused_loss && c.final_logit_softcapping.is_none() { 0 } else { tokens * c.vocab_size as u64 * F32 * 2 };
    let norms_per_layer = if c.sandwich_norms { 4 } else { 2 };
    let vectors = (c.hidden_size * (norms_per_layer * c.num_hidden_layers + 1)) as u64;
    let packed = packed_matrices(c, plan.base_quant, plan.packed_vocabulary).filter(|_| method.lora().is_some());
    let weights = match (plan.f16_matmuls, method.storage_precision(Precision::F16), packed) {
        // The matrices in blocks; norms (and any matrix too odd to pack) in the run's precision.
        (f16, _, Some((packed_bytes, packed_params))) => {
            let matrix_bytes = if f16 { 2 } else { F32 };
            packed_bytes + (total_params - packed_params - vectors) * matrix_bytes + vectors * F32
        }
        // Matrices in f16, norms in f32. (The loss's f32 copy of the output projection is gone
        // by the time the step is fullest, in the measurements.)
        (true, Precision::F16, None) => (total_params - vectors) * 2 + vectors * F32,
        // f32 masters, and an f16 copy of each matrix from its matmul until the backward pass
        // (with checkpointing, one layer's and the head's at a time).
        (true, Precision::F32, None) => {
            // The embedding is gathered, not multiplied: only the head (tied or not) is copied.
            let head = (c.vocab_size * c.hidden_size) as u64;
            let vocab_matrices = if c.tie_word_embeddings { head } else { 2 * head };
            let layer_matrices = (total_params - vectors - vocab_matrices) / layers;
            let copied_layers = if plan.recompute_layers { 1 } else { layers };
            total_params * F32 + (head + layer_matrices * copied_layers) * 2
        }
        (false, _, None) => total_params * F32,
    };
    let (moments, gradients) = (trainable * F32 * 2, trainable * F32);
    let total = weights + moments + gradients.max(activations + logits);
    MemoryEstimate { weights, moments, gradients, activations, logits, total }
}

/// Refuses, before any weight is loaded, a run whose estimated peak is more than the device's
/// `limit` bytes, with the estimate and the first of the usual memory savers that fits.
/// `seq_len` is the longest batch the data makes.
pub fn check_fits(c: &ModelConfig, config: &TrainConfig, on_wgpu: bool, seq_len: usize, limit: u64, device: &str) -> Result<()> {
    let estimate = |config: &TrainConfig, seq_len: usize| {
        estimate_memory(c, &config.method, config.batch_size, seq_len, StepPlan::of(config, on_wgpu))
    };
    let needed = estimate(config, seq_len);
    if needed.total <= limit {
        return Ok(());
    }
    // The savers in the order they cost the least: recomputation, smaller batches (with
    // gradient accumulation the effective batch stays), shorter sequences, a smaller rank.
    let mut smaller = config.clone();
    let mut seq = seq_len;
    let mut flags = Vec::new();
    let fitting = loop {
        if !smaller.gradient_checkpointing {
            smaller.gradient_checkpointing = true;
            set_flag(&mut flags, "--gradient-checkpointing", None);
        } else if smaller.batch_size > 1 {
            smaller.batch_size /= 2;
            set_flag(&mut flags, "--batch-size", Some(smaller.batch_size));
        } else if seq > 256 {
            seq /= 2;
            smaller.data.max_seq_len = seq;
            set_flag(&mut flags, "--max-seq-len", Some(seq));
        } else if let crate::method::Method::Lora(lora) = &mut smaller.method
            && lora.rank > 8
        {
            lora.rank = (lora.rank / 2).max(8);
            set_flag(&mut flags, "--rank", Some(lora.rank));
        } else {
            break None;
        }
        let e = estimate(&smaller, seq);
        if e.total <= limit {
            break Some(e);
        }
    };
    let suggestion = match fitting {
        Some(e) => format!("; with {} it needs about {}", flags.join(" "), human_bytes(e.total)),
        None => format!("; no setting fits (the weights alone take {}): choose a smaller model", human_bytes(needed.weights)),
    };
    Err(Error::OutOfMemory(format!(
        "this run needs about {} (estimate: weights {}, AdamW state {}, gradients {}, activations {}, logits {}), more than the {} of memory on {device}{suggestion}",
        human_bytes(needed.total),
        human_bytes(needed.weights),
        human_bytes(needed.moments),
        human_bytes(needed.gradients),
        human_bytes(needed.activations),
        human_bytes(needed.logits),
        human_bytes(limit),
    )))
}

/// Sets `flag` (with its value, if any) in a suggested command line, replacing an earlier value.
fn set_flag(flags: &mut Vec<String>, flag: &str, value: Option<usize>) {
    flags.retain(|f| f.split(' ').next() != Some(flag));
    flags.push(value.map_or(flag.to_string(), |v| format!("{flag} {v}")));
}

/// Formats a byte count as KiB, MiB or GiB.
pub fn human_bytes(bytes: u64) -> String {
    let mib = bytes as f64 / (1u64 << 20) as f64;
    if mib < 1.0 {
        format!("{:.1} KiB", bytes as f64 / 1024.0)
    } else if mib >= 1024.0 {
        format!("{:.2} GiB", mib / 1024.0)
    } else {
        format!("{mib:.1} MiB")
    }
}

/// Formats a parameter count as 1.2K / 3.4M / 5.6B.
pub fn human_count(n: usize) -> String {
    let n = n as f64;
    if n >= 1e9 {
        format!("{:.2}B", n / 1e9)
    } else if n >= 1e6 {
        format!("{:.2}M", n / 1e6)
    } else if n >= 1e3 {
        format!("{:.1}K", n / 1e3)
    } else {
        format!("{n}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::method::LoraSettings;
    use std::path::Path;

    fn smollm2() -> ModelConfig {
        ModelConfig::from_json(
            r#"{"model_type": "llama", "vocab_size": 49152, "hidden_size": 576, "intermediate_size": 1536,
            "num_hidden_layers": 30, "num_attention_heads": 9, "num_key_value_heads": 3, "tie_word_embeddings": true}"#,
            Path::new("config.json"),
        )
        .unwrap()
    }

    #[test]
    fn lora_r16_on_all_projections_of_smollm2_is_4_88m() {
        // PEFT reports 4,884,480 trainable parameters for this configuration.
        let method = Method::Lora(LoraSettings { rank: 16, ..Default::default() });
        assert_eq!(trainable_count(&smollm2(), &method), 4_884_480);
    }

    #[test]
    fn full_and_partial_counts_add_up() {
        let c = smollm2();
        let shapes: usize = parameter_shapes(&c).iter().map(|(_, s)| s.iter().product::<usize>()).sum();
        assert_eq!(shapes, c.num_parameters());
        assert_eq!(trainable_count(&c, &Method::Full), c.num_parameters());
        let top = trainable_count(&c, &Method::TopLayers { layers: 2 });
        assert_eq!(top, 2 * (c.num_parameters() - 49152 * 576 - 576) / 30);
        let norms = trainable_count(&c, &Method::Modules { names: vec!["norm".into()] });
        assert_eq!(norms, 576);
    }

    #[test]
    fn estimate_is_within_15_percent_of_the_measured_peaks_in_benchmarks_md() {
        const GIB: f64 = (1u64 << 30) as f64;
        // `wgtune bench` measures without dropout unless asked (`--lora-dropout`).
        let lora = || Method::Lora(LoraSettings { rank: 16, dropout: 0.0, ..Default::default() });
        let lora_dropout = || Method::Lora(LoraSettings { rank: 16, dropout: 0.05, ..Default::default() });
        let (cpu, cpu_generic) = (StepPlan::new(true, false, false, Precision::F32), StepPlan::new(false, false, false, Precision::F32));
        let (wgpu, wgpu_generic) = (StepPlan::new(true, true, false, Precision::F32), StepPlan::new(false, true, false, Precision::F32));
        let wgpu_recompute = StepPlan::new(true, true, true, Precision::F32);
        let wgpu_f16 = StepPlan::new(true, true, false, Precision::F16);
        let wgpu_f16_recompute = StepPlan::new(true, true, true, Precision::F16);
        let packed = |base_quant, precision| StepPlan { base_quant, ..StepPlan::new(true, false, false, precision) };
        let (cpu_int8, cpu_int4) = (packed(BaseQuant::Int8, Precision::F32), packed(BaseQuant::Int4, Precision::F32));
        let cpu_int4_f16 = packed(BaseQuant::Int4, Precision::F16);
        // `wgtune bench --batch-size 4 --seq-len 256|512` on SmolLM2-135M, after a warm-up step:
        // peak RSS on the CPU; on wgpu (lavapipe) the tensors alive at the allocator's fullest
        // moment, which is what the estimate models (the pool reserves 1.0–1.3× that).
        let measured = [
            // The CPU rows since its matmuls write into results allocated once ("... fewer
            // passes over fresh memory on the CPU" in BENCHMARKS.md); the generic row keeps the
            // probabilities and SwiGLU's intermediates.
            (lora(), cpu, 256, 1.72),
            (lora(), cpu_generic, 256, 3.31),
            (lora(), cpu_int8, 256, 1.51),
            (lora(), cpu_int4, 256, 1.44),
            (lora(), cpu_int4_f16, 256, 1.47),
            (Method::Full, cpu, 256, 2.89),
            // With `--lora-dropout 0.05` (2026-12-01, a fourth session): the dropped-out inputs,
            // and on the generic path Burn's masks.
            (lora_dropout(), cpu, 256, 1.98),
            (lora_dropout(), cpu_generic, 256, 4.11),
            // On wgpu the products drop their inputs out again in the backward pass.
            (lora_dropout(), wgpu, 256, 1.69),
            // Re-measured with the fused norm, rotation and gradient norm (2026-12-01): LoRA,
            // generic and full fine-tuning at 256, LoRA at 512, LoRA with recomputation and in
            // f16 at 256. The other wgpu rows are from their own sessions.
            (lora(), wgpu, 256, 1.69),
            (lora(), wgpu_generic, 256, 3.13),
            (lora(), wgpu, 512, 2.83),
            (lora(), wgpu_generic, 512, 6.76),
            (Method::Full, wgpu, 256, 2.65),
            (lora(), wgpu_recompute, 256, 0.626),
            (lora(), wgpu_recompute, 512, 0.697),
            (Method::Full, wgpu_recompute, 256, 2.00),
            (lora(), wgpu_f16, 256, 1.44),
            (lora(), wgpu_f16_recompute, 256, 0.376),
            (lora(), wgpu_f16_recompute, 512, 0.446),
            (Method::Full, wgpu_f16, 256, 2.98),
            (Method::Full, wgpu_f16_recompute, 256, 2.00),
        ];
        for (method, plan, seq_len, measured_gib) in measured {
            let estimate = estimate_memory(&smollm2(), &method, 4, seq_len, plan).total as f64 / GIB;
            let ratio = estimate / measured_gib;
            assert!(
                (0.85..=1.15).contains(&ratio),
                "{method:?} {plan:?} 4 x {seq_len}: estimate {estimate:.2} GiB, measured {measured_gib} GiB"
            );
        }
    }
}
