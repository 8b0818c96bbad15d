//! Whether every tensor a run keeps whole on a wgpu device fits in one storage binding.
//!
//! Burn keeps each tensor in one buffer, and a shader can bind at most
//! `max_storage_buffer_binding_size` bytes of it (128 MiB by WebGPU's default, on lavapipe and in
//! browsers; 2–4 GiB on most desktop GPUs). Frozen vocabulary tables are split to fit (see
//! `model::vocabulary`); logits are computed a chunk of rows at a time (`train::loss`). Anything
//! else larger fails at its first launch, so a run is refused before any weight is loaded, with
//! the tensor, the limit, and the first setting under which every tensor fits.

use burn::tensor::DType;

use super::{human_bytes, trains_whole};
use crate::device::AdapterLimits;
use crate::error::{Error, Result};
use crate::kernels;
use crate::method::{LoraSettings, Method};
use crate::model::{BaseQuant, ModelConfig, Precision};
use crate::train::TrainConfig;

/// A tensor a step keeps whole on the device.
#[derive(Clone, Debug, PartialEq)]
struct Whole {
    what: String,
    shape: Vec<usize>,
    bytes: u64,
}

/// Refuses a run on `adapter` (described as `device`) that keeps a tensor larger than one storage
/// binding, or that needs the WGSL kernels for a packed base where the adapter cannot run them.
/// `seq_len` is the longest batch the data makes.
pub fn check_bindings(c: &ModelConfig, config: &TrainConfig, seq_len: usize, adapter: &AdapterLimits, device: &str) -> Result<()> {
    let packed = config.method.lora().is_some() && config.base_quant.bits().is_some();
    let short = kernels::shortfalls(adapter);
    if packed && !short.is_empty() {
        return Err(Error::setting(
            "base_quant",
            format!("a packed base runs only in the WGSL kernels, and {device} offers {}: use --base-quant none", short.join(", ")),
        ));
    }
    let limit = adapter.tensor_bytes();
    let wgsl = short.is_empty();
    let Some(first) = too_large(c, config, seq_len, limit, wgsl).into_iter().next() else {
        return Ok(());
    };
    let suggestion = match alternatives(config, seq_len).into_iter().find(|(_, alt, seq)| too_large(c, alt, *seq, limit, wgsl).is_empty()) {
        Some((flags, ..)) => format!(": with {flags} every tensor fits"),
        None => ": no setting fits on this device; --device cpu has no such limit".to_string(),
    };
    Err(Error::OutOfMemory(format!(
        "`{}` {:?} takes {} as one tensor, more than the {} one storage binding holds on {device} (its max_storage_buffer_binding_size){suggestion}",
        first.what,
        first.shape,
        human_bytes(first.bytes),
        human_bytes(limit),
    )))
}

/// The settings tried, in the order they cost the least, each as (flags, settings, sequence
/// length): smaller batches (gradient accumulation keeps the effective batch), shorter sequences,
/// f16 weights, a packed base, and LoRA in place of training whole matrices.
fn alternatives(config: &TrainConfig, seq_len: usize) -> Vec<(String, TrainConfig, usize)> {
    let mut out = Vec::new();
    let mut batch = config.batch_size;
    while batch > 1 {
        batch /= 2;
        out.push((format!("--batch-size {batch}"), TrainConfig { batch_size: batch, ..config.clone() }, seq_len));
    }
    let single = TrainConfig { batch_size: 1, ..config.clone() };
    let mut seq = seq_len;
    while seq > 16 {
        seq /= 2;
        let flags = if config.batch_size > 1 { format!("--batch-size 1 --max-seq-len {seq}") } else { format!("--max-seq-len {seq}") };
        out.push((flags, single.clone(), seq));
    }
    let lora = match &config.method {
        Method::Lora(_) => config.method.clone(),
        _ => Method::Lora(LoraSettings::default()),
    };
    for (precision, base_quant) in [
        (config.precision, BaseQuant::None),
        (Precision::F16, BaseQuant::None),
        (config.precision, BaseQuant::Int8),
        (config.precision, BaseQuant::Int4),
    ] {
        let mut flags = Vec::new();
        if config.method.lora().is_none() {
            flags.push("--method lora".to_string());
        }
        if precision != config.precision {
            flags.push(format!("--precision {precision}"));
        }
        if base_quant != config.base_quant {
            flags.push(format!("--base-quant {base_quant}"));
        }
        if !flags.is_empty() {
            let alt = TrainConfig { method: lora.clone(), precision, base_quant, ..config.clone() };
            out.push((flags.join(" "), alt, seq_len));
        }
    }
    out
}

/// The tensors larger than `limit` bytes that a step of `config` keeps whole, largest first.
/// `wgsl`: the adapter runs the fused kernels (attention without a score matrix).
fn too_large(c: &ModelConfig, config: &TrainConfig, seq_len: usize, limit: u64, wgsl: bool) -> Vec<Whole> {
    let mut out: Vec<Whole> =
        weights(c, config).into_iter().chain(activations(c, config, seq_len, wgsl)).filter(|t| t.bytes > limit).collect();
    out.sort_by_key(|t| std::cmp::Reverse(t.bytes));
    out
}

/// The weight matrices kept whole: trained ones in f32 (their gradients and AdamW moments are the
/// same size), frozen ones in the storage precision or packed; frozen projections of one input
/// share one matrix. Every layer is alike, so layer 0 stands for all. Frozen vocabulary tables
/// are split to fit, but not a trained one, nor a packed head.
fn weights(c: &ModelConfig, config: &TrainConfig) -> Vec<Whole> {
    let method = &config.method;
    let frozen_size = method.storage_precision(config.precision).matrix_dtype().size() as u64;
    let quant = if method.lora().is_some() { config.base_quant } else { BaseQuant::None };
    let (h, i) = (c.hidden_size, c.intermediate_size);
    let (q, kv) = (c.num_attention_heads * c.head_dim, c.num_key_value_heads * c.head_dim);
    let f32_size = DType::F32.size() as u64;
    let whole = |what: &str, shape: [usize; 2], bytes: u64| Whole { what: what.to_string(), shape: shape.to_vec(), bytes };
    // Shapes as the checkpoint stores them, `[out, in]`.
    let frozen = |what: &str, [rows, cols]: [usize; 2]| match quant.packed_bytes(rows, cols).filter(|_| BaseQuant::can_pack(rows, cols)) {
        Some(bytes) => whole(what, [rows, cols], bytes as u64),
        None => whole(what, [rows, cols], (rows * cols) as u64 * frozen_size),
    };
    let mut out = Vec::new();
    let layer = |name: &str| format!("model.layers.0.{name}");
    let shared_attention = c.fused_projections || !trains_whole(c, method, "layers.0.self_attn.q_proj.weight");
    if shared_attention && !trains_whole(c, method, "layers.0.self_attn.qkv_proj.weight") {
        out.push(frozen(&layer("self_attn.{q,k,v}_proj (one frozen matrix)"), [q + 2 * kv, h]));
    }
    let shared_mlp = c.fused_projections || !trains_whole(c, method, "layers.0.mlp.gate_proj.weight");
    if shared_mlp && !trains_whole(c, method, "layers.0.mlp.gate_up_proj.weight") {
        out.push(frozen(&layer("mlp.{gate,up}_proj (one frozen matrix)"), [2 * i, h]));
    }
    for (name, rows, cols) in [
        ("self_attn.q_proj", q, h),
        ("self_attn.k_proj", kv, h),
        ("self_attn.v_proj", kv, h),
        ("self_attn.qkv_proj", q + 2 * kv, h),
        ("self_attn.o_proj", h, q),
        ("mlp.gate_proj", i, h),
        ("mlp.up_proj", i, h),
        ("mlp.gate_up_proj", 2 * i, h),
        ("mlp.down_proj", h, i),
    ] {
        let path = format!("layers.0.{name}.weight");
        if trains_whole(c, method, &path) {
            out.push(whole(&format!("model.{path}"), [rows, cols], (rows * cols) as u64 * f32_size));
        } else if matches!(name, "self_attn.o_proj" | "mlp.down_proj") {
            out.push(frozen(&format!("model.{path}"), [rows, cols]));
        }
    }
    let (vocab, tied) = (c.vocab_size, c.tie_word_embeddings);
    for (path, checkpoint_name) in [("embed_tokens.weight", "model.embed_tokens.weight"), ("lm_head.weight", "lm_head.weight")] {
        if path == "lm_head.weight" && tied {
            continue;
        }
        let table_bytes = (vocab * h) as u64;
        if trains_whole(c, method, path) {
            out.push(whole(checkpoint_name, [vocab, h], table_bytes * f32_size));
        } else if let Some(bytes) = quant.packed_bytes(vocab, h).filter(|_| BaseQuant::can_pack(vocab, h)) {
            // The embedding is looked up on the host; the output projection (the embedding when
            // tied) is packed on the device, whole.
            if path == "lm_head.weight" || tied {
                out.push(whole(checkpoint_name, [vocab, h], bytes as u64));
            }
        }
    }
    out
}

/// The widest activations of a micro-batch, in f32: the shared q/k/v and gate/up products and,
/// where the attention is not fused, its score matrix.
fn activations(c: &ModelConfig, config: &TrainConfig, seq_len: usize, wgsl: bool) -> Vec<Whole> {
    let tokens = config.batch_size * seq_len;
    let (h, i) = (c.hidden_size, c.intermediate_size);
    let (q, kv) = (c.num_attention_heads * c.head_dim, c.num_key_value_heads * c.head_dim);
    let f32_size = DType::F32.size() as u64;
    let whole =
        |what: &str, shape: Vec<usize>| Whole { what: what.to_string(), bytes: shape.iter().product::<usize>() as u64 * f32_size, shape };
    let mut out = vec![
        whole("hidden states", vec![tokens, h]),
        whole("the q, k and v projections' product", vec![tokens, q + 2 * kv]),
        whole("the gate and up projections' product", vec![tokens, 2 * i]),
    ];
    let fused_attention = config.fused_kernels && wgsl && kernels::supports_head_dim(c.head_dim) && c.attn_logit_softcapping.is_none();
    if !fused_attention {
        out.push(whole("attention scores", vec![config.batch_size, c.num_attention_heads, seq_len, seq_len]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ModelConfig;

    fn llama_1b() -> ModelConfig {
        ModelConfig::from_json(
            r#"{"model_type": "llama", "vocab_size": 128256, "hidden_size": 2048, "intermediate_size": 8192,
                "num_hidden_layers": 16, "num_attention_heads": 32, "num_key_value_heads": 8,
                "max_position_embeddings": 131072, "tie_word_embeddings": true, "rms_norm_eps": 1e-5}"#,
            std::path::Path::new("config.json"),
        )
        .unwrap()
    }

    /// WebGPU's default limits on a software adapter.
    fn webgpu() -> AdapterLimits {
        AdapterLimits {
            software: true,
            invocations_per_workgroup: 256,
            workgroup_storage_bytes: 16384,
            storage_buffers_per_stage: 8,
            storage_binding_bytes: 128 << 20,
            buffer_bytes: 256 << 20,
            shader_f16: false,
            subgroups: false,
        }
    }

    fn run(method: Method, batch_size: usize) -> TrainConfig {
        TrainConfig { method, batch_size, ..TrainConfig::default() }
    }

    #[test]
    fn lora_on_a_1b_model_fits_webgpu_with_its_table_split() {
        // The embedding (1.05 GB in f32) is frozen: looked up on the host, the head in blocks.
        check_bindings(&llama_1b(), &run(Method::default(), 4), 512, &webgpu(), "WebGPU").unwrap();
    }

    #[test]
    fn full_fine_tuning_of_a_large_table_is_refused_with_lora_as_the_way_out() {
        let err = check_bindings(&llama_1b(), &run(Method::Full, 1), 128, &webgpu(), "WebGPU").unwrap_err().to_string();
        assert!(
            err.starts_with("`model.embed_tokens.weight` [128256, 2048] takes 1002.0 MiB as one tensor, more than the 128.0 MiB one storage binding holds on WebGPU (its max_storage_buffer_binding_size): with --method lora"),
            "{err}"
        );
    }

    #[test]
    fn a_batch_too_wide_for_one_binding_is_refused_with_the_batch_that_fits() {
        // 16 × 1024 tokens × 16384 (gate and up) × 4 bytes = 1 GiB; 2 × 1024 tokens: 128 MiB.
        let err = check_bindings(&llama_1b(), &run(Method::default(), 16), 1024, &webgpu(), "WebGPU").unwrap_err().to_string();
        assert!(err.starts_with("`the gate and up projections' product` [16384, 16384] takes 1.00 GiB"), "{err}");
        assert!(err.ends_with(": with --batch-size 2 every tensor fits"), "{err}");
        // One sequence too long by itself: shorter sequences.
        let err = check_bindings(&llama_1b(), &run(Method::default(), 1), 8192, &webgpu(), "WebGPU").unwrap_err().to_string();
        assert!(err.ends_with(": with --max-seq-len 2048 every tensor fits"), "{err}");
    }

    #[test]
    fn unfused_attention_counts_its_scores_and_a_packed_base_needs_the_kernels() {
        let c = llama_1b();
        let generic = TrainConfig { fused_kernels: false, ..run(Method::default(), 4) };
        // 4 × 32 heads × 512² × 4 bytes = 128 MiB: just fits; 1024 tokens do not.
        check_bindings(&c, &generic, 512, &webgpu(), "WebGPU").unwrap();
        let err = check_bindings(&c, &generic, 1024, &webgpu(), "WebGPU").unwrap_err().to_string();
        assert!(err.starts_with("`attention scores` [4, 32, 1024, 1024]"), "{err}");

        let downlevel = AdapterLimits { storage_buffers_per_stage: 4, ..webgpu() };
        let packed = TrainConfig { base_quant: BaseQuant::Int4, ..run(Method::default(), 1) };
        let err = check_bindings(&c, &packed, 128, &downlevel, "an old GPU").unwrap_err().to_string();
        assert_eq!(
            err,
            "invalid setting `base_quant`: a packed base runs only in the WGSL kernels, and an old GPU offers 4 storage buffers per stage (the kernels need 8): use --base-quant none"
        );
        // Without the kernels the attention takes Burn's operations and keeps its scores.
        let err = check_bindings(&c, &run(Method::default(), 4), 1024, &downlevel, "an old GPU").unwrap_err().to_string();
        assert!(err.starts_with("`attention scores`"), "{err}");
    }

    #[test]
    fn a_packed_tied_head_larger_than_a_binding_is_refused() {
        // Gemma 2's 256,000-token table packed in int4 is 288 MiB on the device, as the head.
        let mut c = llama_1b();
        c.vocab_size = 256_000;
        c.hidden_size = 2304;
        let packed = TrainConfig { base_quant: BaseQuant::Int4, ..run(Method::default(), 1) };
        let err = check_bindings(&c, &packed, 128, &webgpu(), "WebGPU").unwrap_err().to_string();
        assert!(err.starts_with("`model.embed_tokens.weight` [256000, 2304] takes"), "{err}");
        assert!(err.ends_with(": with --precision f16 --base-quant none every tensor fits"), "{err}");
    }
}
