//! A GGUF file read as the Hugging Face model it was converted from: `config.json`'s fields from
//! the metadata, tensors under transformers' names, and the rows of Q and K in transformers'
//! order (llama.cpp's converter interleaves them for the llama architecture).

use std::path::Path;

use serde_json::{Value as Json, json};

use super::quants::repack;
use super::{GgufFile, Value};
use crate::error::{Error, Result};
use crate::model::packed::HostPacked;
use crate::model::{HostTensor, ModelConfig, RopeScaling};

/// The GGUF architectures wgtune reads, and the `model_type` each one is.
const ARCHITECTURES: [(&str, &str); 6] =
    [("llama", "llama"), ("qwen2", "qwen2"), ("qwen3", "qwen3"), ("gemma2", "gemma2"), ("gemma3", "gemma3_text"), ("phi3", "phi3")];

/// A GGUF model: the file, its architecture, and what unpermuting Q and K needs.
pub struct GgufModel {
    pub file: GgufFile,
    pub architecture: String,
    heads: usize,
    kv_heads: usize,
}

impl GgufModel {
    pub fn open(path: &Path) -> Result<Self> {
        let file = GgufFile::open(path)?;
        let architecture = file.get_str("general.architecture")?.to_string();
        if !ARCHITECTURES.iter().any(|(a, _)| *a == architecture) {
            let names: Vec<&str> = ARCHITECTURES.iter().map(|(a, _)| *a).collect();
            return Err(Error::invalid_file(path, format!("GGUF architecture `{architecture}` is not supported ({})", names.join(", "))));
        }
        let heads = file.get_u64(&format!("{architecture}.attention.head_count"))? as usize;
        let kv_heads =
            file.metadata.get(&format!("{architecture}.attention.head_count_kv")).and_then(Value::as_u64).map_or(heads, |v| v as usize);
        Ok(Self { file, architecture, heads, kv_heads })
    }

    fn key(&self, name: &str) -> String {
        format!("{}.{name}", self.architecture)
    }

    /// The `config.json` transformers would have for this model, for [`crate::model::ModelConfig`].
    pub fn config_json(&self) -> Result<Json> {
        let f = &self.file;
        let int = |name: &str| f.get_u64(&self.key(name));
        let optional = |name: &str| f.metadata.get(&self.key(name));
        let vocab_size = match f.info("token_embd.weight") {
            Some(info) => info.shape[0],
            None => return Err(Error::MissingTensor { path: f.path.clone(), name: "token_embd.weight".into() }),
        };
        let model_type = ARCHITECTURES.iter().find(|(a, _)| *a == self.architecture).map_or("llama", |(_, t)| *t);
        let mut config = json!({
            "model_type": model_type,
            "vocab_size": vocab_size,
            "hidden_size": int("embedding_length")?,
            "intermediate_size": int("feed_forward_length")?,
            "num_hidden_layers": int("block_count")?,
            "num_attention_heads": self.heads,
            "num_key_value_heads": self.kv_heads,
            "max_position_embeddings": int("context_length")?,
            "rms_norm_eps": optional("attention.layer_norm_rms_epsilon").and_then(Value::as_f64).unwrap_or(1e-6),
            "rope_theta": optional("rope.freq_base").and_then(Value::as_f64).unwrap_or(10000.0),
            "tie_word_embeddings": f.info("output.weight").is_none(),
            "hidden_act": if self.is_gemma() { "gelu_pytorch_tanh" } else { "silu" },
        });
        let object = config.as_object_mut().expect("a JSON object literal");
        if let Some(head_dim) = optional("attention.key_length").and_then(Value::as_u64) {
            object.insert("head_dim".into(), json!(head_dim));
        }
        // What llama.cpp fixes for Gemma in code: attention scaled by 1/√head_dim, Gemma 3's
        // window five layers in six with a local RoPE base of 10000.
        if self.is_gemma() {
            let embedding = int("embedding_length")?;
            let head_dim = optional("attention.key_length").and_then(Value::as_u64).unwrap_or(embedding / self.heads as u64);
            object.insert("query_pre_attn_scalar".into(), json!(head_dim));
            for (key, field) in
                [("attn_logit_softcapping", "attn_logit_softcapping"), ("final_logit_softcapping", "final_logit_softcapping")]
            {
                object.insert(field.into(), json!(optional(key).and_then(Value::as_f64)));
            }
            if self.architecture == "gemma3" {
                object.insert("sliding_window_pattern".into(), json!(6));
                object.insert("rope_local_base_freq".into(), json!(10_000.0));
            }
        }
        if let Some(window) = optional("attention.sliding_window").and_then(Value::as_u64) {
            object.insert("sliding_window".into(), json!(window));
        }
        if self.architecture == "phi3" {
            let head_dim = int("embedding_length")? as f64 / self.heads as f64;
            if let Some(rotary) = optional("rope.dimension_count").and_then(Value::as_u64) {
                object.insert("partial_rotary_factor".into(), json!(rotary as f64 / head_dim));
            }
            if let (Some(original), true) =
                (optional("rope.scaling.original_context_length").and_then(Value::as_u64), f.info("rope_factors_long.weight").is_some())
            {
                let factors = |name: &str| f.read(name).map(|v| v.into_iter().map(f64::from).collect::<Vec<f64>>());
                object.insert("original_max_position_embeddings".into(), json!(original));
                object.insert(
                    "rope_scaling".into(),
                    json!({"rope_type": "longrope", "long_factor": factors("rope_factors_long.weight")?, "short_factor": factors("rope_factors_short.weight")?}),
                );
            }
        }
        for (key, field) in [("tokenizer.ggml.eos_token_id", "eos_token_id"), ("tokenizer.ggml.bos_token_id", "bos_token_id")] {
            if let Some(id) = f.metadata.get(key).and_then(Value::as_u64) {
                object.insert(field.into(), json!(id));
            }
        }
        match optional("rope.scaling.type").and_then(Value::as_str) {
            None | Some("none") => {}
            Some("linear") => {
                let factor = optional("rope.scaling.factor").and_then(Value::as_f64).unwrap_or(1.0);
                object.insert("rope_scaling".into(), json!({"rope_type": "linear", "factor": factor}));
            }
            Some(other) => {
                return Err(Error::invalid_file(
                    &f.path,
                    format!("rope scaling `{other}` is not supported (linear, or llama3's rope_freqs)"),
                ));
            }
        }
        Ok(config)
    }

    /// llama.cpp's per-frequency divisors (`rope_freqs.weight`, Llama 3.1's rope scaling), if any.
    pub fn rope_factors(&self) -> Result<Option<Vec<f64>>> {
        if self.file.info("rope_freqs.weight").is_none() {
            return Ok(None);
        }
        Ok(Some(self.file.read("rope_freqs.weight")?.into_iter().map(f64::from).collect()))
    }

    /// The rope scaling to use: `config.json`'s own (`Linear`, none), or for `rope_freqs` the
    /// Llama 3 parameters that reproduce every stored factor, else the factors themselves.
    pub fn rope_scaling(&self, config: &ModelConfig) -> Result<RopeScaling> {
        let Some(factors) = self.rope_factors()? else { return Ok(config.rope_scaling.clone()) };
        Ok(fit_llama3(&factors, config.rope_theta, config.head_dim).unwrap_or(RopeScaling::Factors(factors)))
    }

    fn is_gemma(&self) -> bool {
        matches!(self.architecture.as_str(), "gemma2" | "gemma3")
    }

    /// llama.cpp's name for a transformers tensor name, in this file's architecture.
    fn gguf_name(&self, hf_name: &str) -> Option<String> {
        gguf_name_in(&self.architecture, hf_name)
    }

    pub fn contains(&self, hf_name: &str) -> bool {
        self.gguf_name(hf_name).is_some_and(|n| self.file.info(&n).is_some())
    }

    /// Every tensor of the model under transformers' names (llama.cpp's extras, such as
    /// `rope_freqs`, left out).
    pub fn transformers_names(&self) -> impl Iterator<Item = String> + '_ {
        self.file.names().filter_map(|name| transformers_name_in(&self.architecture, name))
    }

    /// A tensor's shape under its transformers name.
    pub fn shape(&self, hf_name: &str) -> Result<Vec<usize>> {
        let name = self.gguf_name(hf_name).unwrap_or_else(|| hf_name.to_string());
        self.file.info(&name).map(|i| i.shape.clone()).ok_or_else(|| Error::MissingTensor { path: self.file.path.clone(), name })
    }

    /// The type most weight matrices are stored in.
    pub fn dominant_type(&self) -> Option<super::GgmlType> {
        let mut counts = std::collections::HashMap::new();
        for name in self.file.names().filter(|n| n.ends_with(".weight")) {
            if let Some(info) = self.file.info(name).filter(|i| i.shape.len() == 2) {
                *counts.entry(info.ggml_type).or_insert(0usize) += 1;
            }
        }
        counts.into_iter().max_by_key(|(_, n)| *n).map(|(t, _)| t)
    }

    /// The tensor transformers calls `hf_name`, in f32 and transformers' layout, checked against
    /// `expected`.
    pub fn read(&self, hf_name: &str, expected: &[usize]) -> Result<HostTensor> {
        let name =
            self.gguf_name(hf_name).ok_or_else(|| Error::MissingTensor { path: self.file.path.clone(), name: hf_name.to_string() })?;
        let info = self.file.info(&name).ok_or_else(|| Error::MissingTensor { path: self.file.path.clone(), name: name.clone() })?;
        if info.shape != expected {
            return Err(Error::TensorShape { path: self.file.path.clone(), name, found: info.shape.clone(), expected: expected.to_vec() });
        }
        let values = self.file.read(&name)?;
        let values = match self.permuted_heads(&name) {
            Some(heads) => reorder_rows(&values, expected, heads, RowOrder::FromGguf),
            // llama.cpp keeps Gemma's norms as the factors they multiply by, 1 + weight.
            None if self.is_gemma() && name.ends_with("norm.weight") => values.iter().map(|w| w - 1.0).collect(),
            None => values,
        };
        Ok(HostTensor { shape: expected.to_vec(), values })
    }

    /// A `[rows, cols]` matrix's blocks as they are in the file, repacked for a LoRA base of
    /// `bits`-bit numbers keeping the file's numbers: Q8_0 for int8, Q4_K (exactly), Q4_0 and Q4_1
    /// (their scales rounded to 8-bit sub-scales) for int4.
    /// `None` when the tensor is stored otherwise (the loader quantizes its values instead).
    pub fn read_packed(&self, hf_name: &str, expected: &[usize], bits: usize) -> Result<Option<HostPacked>> {
        let Some(info) = self.gguf_name(hf_name).and_then(|name| self.file.info(&name)) else { return Ok(None) };
        if info.shape != expected {
            return Ok(None);
        }
        let name = self.gguf_name(hf_name).unwrap_or_default();
        let Some(packed) = repack(info.ggml_type, self.file.raw(&name)?, expected[0], expected[1], bits) else { return Ok(None) };
        Ok(Some(match self.permuted_heads(&name) {
            Some(heads) => {
                let rows = packed.layout.rows;
                let (values_per_row, params_per_row) = (packed.values.len() / rows, packed.params.len() / rows);
                HostPacked {
                    values: reorder_rows(&packed.values, &[rows, values_per_row], heads, RowOrder::FromGguf),
                    params: reorder_rows(&packed.params, &[rows, params_per_row], heads, RowOrder::FromGguf),
                    layout: packed.layout,
                }
            }
            None => packed,
        }))
    }

    /// The heads whose rows llama.cpp's converter interleaved in this tensor (Llama's Q and K).
    fn permuted_heads(&self, gguf_name: &str) -> Option<usize> {
        if self.architecture != "llama" {
            None
        } else if gguf_name.ends_with("attn_q.weight") {
            Some(self.heads)
        } else if gguf_name.ends_with("attn_k.weight") {
            Some(self.kv_heads)
        } else {
            None
        }
    }
}

/// The Llama 3 rope scaling whose factors, computed as llama.cpp's converter computes them, are
/// `factors` (to f32 rounding). The converter keeps only the factors; the parameters are found
/// among the ones Llama 3 models use, and checked against every factor.
fn fit_llama3(factors: &[f64], theta: f64, head_dim: usize) -> Option<RopeScaling> {
    let factor = factors.iter().copied().fold(1.0, f64::max);
    let freqs: Vec<f64> = (0..head_dim / 2).map(|i| 1.0 / theta.powf((2 * i) as f64 / head_dim as f64)).collect();
    let candidates = (4..=20).map(|p| (1u64 << p) as f64).flat_map(|original| {
        [1.0, 2.0, 4.0].into_iter().flat_map(move |low| [2.0, 4.0, 8.0, 16.0, 32.0].into_iter().map(move |high| (original, low, high)))
    });
    candidates.filter(|(_, low, high)| high > low).find_map(|(original, low, high)| {
        let fits = freqs.iter().zip(factors).all(|(freq, stored)| {
            let expected = llama3_divisor(*freq, factor, low, high, original);
            (expected - stored).abs() <= 1e-6 * expected
        });
        fits.then_some(RopeScaling::Llama3 {
            factor,
            low_freq_factor: low,
            high_freq_factor: high,
            original_max_position_embeddings: original,
        })
    })
}

/// What llama.cpp's converter divides frequency `freq` by for Llama 3 rope scaling: 1 for short
/// wavelengths, `factor` for long ones, and a smooth blend between.
pub(super) fn llama3_divisor(freq: f64, factor: f64, low: f64, high: f64, original: f64) -> f64 {
    let wavelen = 2.0 * std::f64::consts::PI / freq;
    if wavelen < original / high {
        1.0
    } else if wavelen > original / low {
        factor
    } else {
        let smooth = (original / wavelen - low) / (high - low);
        1.0 / ((1.0 - smooth) / factor + smooth)
    }
}

/// llama.cpp's module names in a block, and transformers' for the same module.
const BLOCK_MODULES: [(&str, &str); 11] = [
    ("input_layernorm", "attn_norm"),
    ("self_attn.q_norm", "attn_q_norm"),
    ("self_attn.k_norm", "attn_k_norm"),
    ("self_attn.q_proj", "attn_q"),
    ("self_attn.k_proj", "attn_k"),
    ("self_attn.v_proj", "attn_v"),
    ("self_attn.o_proj", "attn_output"),
    ("post_attention_layernorm", "ffn_norm"),
    ("mlp.gate_proj", "ffn_gate"),
    ("mlp.up_proj", "ffn_up"),
    ("mlp.down_proj", "ffn_down"),
];
const TOP_LEVEL: [(&str, &str); 3] =
    [("model.embed_tokens.weight", "token_embd.weight"), ("model.norm.weight", "output_norm.weight"), ("lm_head.weight", "output.weight")];

/// transformers' name for a llama.cpp tensor name of architecture `arch` (the inverse of
/// [`gguf_name_in`]).
pub fn transformers_name_in(arch: &str, gguf: &str) -> Option<String> {
    if let Some((hf, _)) = TOP_LEVEL.iter().find(|(_, g)| *g == gguf) {
        return Some(hf.to_string());
    }
    let rest = gguf.strip_prefix("blk.")?;
    let (layer, rest) = rest.split_once('.')?;
    let (module, kind) = rest.rsplit_once('.')?;
    let (hf, _) = block_modules(arch).iter().find(|(_, g)| *g == module)?;
    Some(format!("model.layers.{layer}.{hf}.{kind}"))
}

/// Phi-3's block modules: q, k and v stacked in one projection, gate and up in another (which
/// llama.cpp keeps as `ffn_up` and splits in its graph).
const PHI3_BLOCK_MODULES: [(&str, &str); 6] = [
    ("input_layernorm", "attn_norm"),
    ("self_attn.qkv_proj", "attn_qkv"),
    ("self_attn.o_proj", "attn_output"),
    ("post_attention_layernorm", "ffn_norm"),
    ("mlp.gate_up_proj", "ffn_up"),
    ("mlp.down_proj", "ffn_down"),
];

/// Gemma 2 and 3's block modules: a norm before and after each sublayer, where llama.cpp's
/// `ffn_norm` is the one before the MLP.
const GEMMA_BLOCK_MODULES: [(&str, &str); 13] = [
    ("input_layernorm", "attn_norm"),
    ("self_attn.q_norm", "attn_q_norm"),
    ("self_attn.k_norm", "attn_k_norm"),
    ("self_attn.q_proj", "attn_q"),
    ("self_attn.k_proj", "attn_k"),
    ("self_attn.v_proj", "attn_v"),
    ("self_attn.o_proj", "attn_output"),
    ("post_attention_layernorm", "post_attention_norm"),
    ("pre_feedforward_layernorm", "ffn_norm"),
    ("post_feedforward_layernorm", "post_ffw_norm"),
    ("mlp.gate_proj", "ffn_gate"),
    ("mlp.up_proj", "ffn_up"),
    ("mlp.down_proj", "ffn_down"),
];

/// The block modules of llama.cpp's architecture `arch`.
fn block_modules(arch: &str) -> &'static [(&'static str, &'static str)] {
    match arch {
        "phi3" => &PHI3_BLOCK_MODULES,
        "gemma2" | "gemma3" => &GEMMA_BLOCK_MODULES,
        _ => &BLOCK_MODULES,
    }
}

/// llama.cpp's name for a transformers tensor name (in the Llama-style families).
pub fn gguf_name(hf_name: &str) -> Option<String> {
    gguf_name_in("llama", hf_name)
}

/// llama.cpp's name for a transformers tensor name of a model of llama.cpp's architecture `arch`.
pub fn gguf_name_in(arch: &str, hf_name: &str) -> Option<String> {
    if let Some((_, gguf)) = TOP_LEVEL.iter().find(|(hf, _)| *hf == hf_name) {
        return Some(gguf.to_string());
    }
    let rest = hf_name.strip_prefix("model.layers.")?;
    let (layer, rest) = rest.split_once('.')?;
    let (module, kind) = rest.rsplit_once('.')?;
    let (_, gguf) = block_modules(arch).iter().find(|(hf, _)| *hf == module)?;
    Some(format!("blk.{layer}.{gguf}.{kind}"))
}

/// Which way [`reorder_rows`] goes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum RowOrder {
    /// transformers' order to llama.cpp's (its converter's `permute`).
    ToGguf,
    /// llama.cpp's order back to transformers'.
    FromGguf,
}

/// llama.cpp's `permute` of Q and K rows, or its inverse: within each head, transformers keeps
/// the two rotary halves apart (row `p · half + i`), GGUF interleaves them (row `2i + p`).
/// `shape[1]` counts the items of a row, whatever they are (values, or a packed row's words).
pub(super) fn reorder_rows<T: Copy + Default>(values: &[T], shape: &[usize], heads: usize, order: RowOrder) -> Vec<T> {
    let (rows, cols) = (shape[0], shape.get(1).copied().unwrap_or(1));
    let head_dim = rows / heads;
    let half = head_dim / 2;
    let mut out = vec![T::default(); values.len()];
    for h in 0..heads {
        for i in 0..half {
            for p in 0..2 {
                let (hf, gguf) = ((h * head_dim + p * half + i) * cols, (h * head_dim + 2 * i + p) * cols);
                let (from, to) = if order == RowOrder::ToGguf { (hf, gguf) } else { (gguf, hf) };
                out[to..to + cols].copy_from_slice(&values[from..from + cols]);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_to_llama_cpp() {
        assert_eq!(gguf_name("model.layers.3.self_attn.q_proj.bias").as_deref(), Some("blk.3.attn_q.bias"));
        assert_eq!(gguf_name("model.layers.0.mlp.down_proj.weight").as_deref(), Some("blk.0.ffn_down.weight"));
        assert_eq!(gguf_name("model.layers.0.post_attention_layernorm.weight").as_deref(), Some("blk.0.ffn_norm.weight"));
        assert_eq!(gguf_name("lm_head.weight").as_deref(), Some("output.weight"));
        assert_eq!(gguf_name("model.layers.0.self_attn.rotary_emb.inv_freq"), None);
        assert_eq!(transformers_name_in("llama", "blk.7.ffn_gate.weight").as_deref(), Some("model.layers.7.mlp.gate_proj.weight"));
        assert_eq!(transformers_name_in("llama", "output_norm.weight").as_deref(), Some("model.norm.weight"));
        assert_eq!(transformers_name_in("llama", "rope_freqs.weight"), None);
        // Each family under its own names, both ways.
        for (arch, hf, gguf) in [
            ("gemma2", "model.layers.1.post_attention_layernorm.weight", "blk.1.post_attention_norm.weight"),
            ("gemma3", "model.layers.0.pre_feedforward_layernorm.weight", "blk.0.ffn_norm.weight"),
            ("gemma3", "model.layers.0.post_feedforward_layernorm.weight", "blk.0.post_ffw_norm.weight"),
            ("phi3", "model.layers.2.self_attn.qkv_proj.weight", "blk.2.attn_qkv.weight"),
            ("phi3", "model.layers.2.mlp.gate_up_proj.weight", "blk.2.ffn_up.weight"),
            ("llama", "model.layers.0.post_attention_layernorm.weight", "blk.0.ffn_norm.weight"),
        ] {
            assert_eq!(gguf_name_in(arch, hf).as_deref(), Some(gguf), "{arch}");
            assert_eq!(transformers_name_in(arch, gguf).as_deref(), Some(hf), "{arch}");
        }
    }

    #[test]
    fn unpermuting_inverts_llama_cpp_permute() {
        // Two heads of dim 4, one column: transformers' rows 0..8; llama.cpp's permute
        // reshape(2, 2, 2).swapaxes(1, 2) gives, per head, rows [0, 2, 1, 3].
        let permuted = [0.0, 2.0, 1.0, 3.0, 4.0, 6.0, 5.0, 7.0];
        assert_eq!(reorder_rows(&permuted, &[8, 1], 2, RowOrder::FromGguf), [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]);
        assert_eq!(reorder_rows(&[0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0], &[8, 1], 2, RowOrder::ToGguf), permuted);
    }
}
