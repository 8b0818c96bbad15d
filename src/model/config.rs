//! `config.json` of a Hugging Face model folder, for the Llama family and its variations.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::activation::Activation;
use crate::classify::LabelSet;
use crate::error::{Error, Result};

/// The decoder architectures wgtune runs. They share one implementation (`llama.rs`) and differ
/// only in the fields of [`ModelConfig`] that name each variation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Architecture {
    Llama,
    Mistral,
    Qwen2,
    /// Qwen2 without q/k/v bias, with an RMSNorm over each head of the queries and keys.
    Qwen3,
    /// Llama with some layers that apply no RoPE (`no_rope_layers`).
    SmolLm3,
    /// Gemma 2: embeddings scaled by √hidden, norms by `1 + weight`, GeGLU, each sublayer's
    /// output normalised before the residual, sliding-window and global layers alternating,
    /// soft-capped attention scores and logits.
    Gemma2,
    /// Gemma 3's text model: Gemma 2 with Qwen3's per-head query and key norms, no soft-capping,
    /// and a RoPE base of its own for the sliding-window layers.
    Gemma3,
    /// Phi-3 and Phi-4-mini: Llama with fused `qkv_proj` and `gate_up_proj`, LongRoPE scaling
    /// and RoPE on part of each head (`partial_rotary_factor`).
    Phi3,
}

impl Architecture {
    pub const SUPPORTED: &'static [&'static str] = &["llama", "mistral", "qwen2", "qwen3", "smollm3", "gemma2", "gemma3_text", "phi3"];

    fn from_model_type(model_type: &str) -> Option<Self> {
        match model_type {
            "llama" => Some(Self::Llama),
            "mistral" => Some(Self::Mistral),
            "qwen2" => Some(Self::Qwen2),
            "qwen3" => Some(Self::Qwen3),
            "smollm3" => Some(Self::SmolLm3),
            "gemma2" => Some(Self::Gemma2),
            "gemma3_text" => Some(Self::Gemma3),
            "phi3" => Some(Self::Phi3),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Llama => "llama",
            Self::Mistral => "mistral",
            Self::Qwen2 => "qwen2",
            Self::Qwen3 => "qwen3",
            Self::SmolLm3 => "smollm3",
            Self::Gemma2 => "gemma2",
            Self::Gemma3 => "gemma3_text",
            Self::Phi3 => "phi3",
        }
    }

    /// What to use instead of a `model_type` close to one we support, for the error that names it.
    pub fn hint(model_type: &str) -> &'static str {
        match model_type {
            "gemma3" => {
                " (Gemma 3 4B and larger are image-and-text models: open a text model such as gemma-3-1b or gemma-3-270m, \
                 model_type gemma3_text)"
            }
            "phi4" | "phi4mm" | "phi4_multimodal" => " (Phi-4-mini's model_type is phi3; the multimodal Phi-4 is not supported)",
            _ => "",
        }
    }

    fn is_gemma(self) -> bool {
        matches!(self, Self::Gemma2 | Self::Gemma3)
    }
}

/// How rotary frequencies are rescaled for long contexts.
#[derive(Clone, Debug, PartialEq)]
pub enum RopeScaling {
    None,
    /// Positions divided by `factor`.
    Linear {
        factor: f64,
    },
    /// Per-frequency divisors, as llama.cpp stores Llama 3.1's rescaling in GGUF files
    /// (`rope_freqs.weight`).
    Factors(Vec<f64>),
    /// Llama 3.1's frequency-dependent rescaling.
    Llama3 {
        factor: f64,
        low_freq_factor: f64,
        high_freq_factor: f64,
        original_max_position_embeddings: f64,
    },
    /// Phi-3's LongRoPE: per-frequency divisors, `short` up to the pretrained context and `long`
    /// beyond it (chosen per forward pass by its last position), and cos and sin scaled by
    /// `attention_factor`.
    LongRope {
        short_factor: Vec<f64>,
        long_factor: Vec<f64>,
        original_max_position_embeddings: usize,
        attention_factor: f64,
    },
}

/// The fields of `config.json` the model needs, resolved to their effective values.
#[derive(Clone, Debug)]
pub struct ModelConfig {
    pub architecture: Architecture,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    pub head_dim: usize,
    /// The leading dimensions of each head that RoPE rotates (`partial_rotary_factor` of
    /// `head_dim`; all of it elsewhere).
    pub rotary_dim: usize,
    pub rms_norm_eps: f64,
    pub rope_theta: f64,
    pub rope_scaling: RopeScaling,
    pub max_position_embeddings: usize,
    pub tie_word_embeddings: bool,
    /// Bias on the q, k and v projections.
    pub qkv_bias: bool,
    /// Bias on the output projection.
    pub o_bias: bool,
    /// An RMSNorm over each head of the queries and keys (Qwen3).
    pub qk_norm: bool,
    /// How each decoder layer attends.
    pub layers: Vec<LayerAttention>,
    pub mlp_bias: bool,
    /// The MLP's gate activation.
    pub activation: Activation,
    /// Tokens attend at most this far back in the layers marked `sliding` (Mistral: all of
    /// them; Gemma: every other, or five in six); `None` is full causal attention.
    pub sliding_window: Option<usize>,
    /// The RoPE base of the sliding-window layers, unscaled, where it differs from the global
    /// layers' `rope_theta` (Gemma 3).
    pub local_rope_theta: Option<f64>,
    /// Gemma: the token embeddings are multiplied by √hidden_size.
    pub scale_embeddings: bool,
    /// Gemma: RMSNorm multiplies by `1 + weight`, so a zero weight is the identity.
    pub norm_unit_offset: bool,
    /// Gemma: each sublayer's output is normalised before it joins the residual
    /// (`post_attention_layernorm`, `post_feedforward_layernorm`), and the MLP's input by
    /// `pre_feedforward_layernorm`.
    pub sandwich_norms: bool,
    /// Attention scores are `q·k / √query_pre_attn_scalar` (Gemma); `head_dim` elsewhere.
    pub query_pre_attn_scalar: f64,
    /// Attention scores pass through `cap · tanh(score / cap)` (Gemma 2).
    pub attn_logit_softcapping: Option<f64>,
    /// Logits pass through `cap · tanh(logit / cap)` (Gemma 2).
    pub final_logit_softcapping: Option<f64>,
    /// The checkpoint stacks q, k and v into `qkv_proj`, and gate and up into `gate_up_proj`
    /// (Phi-3); LoRA adapts those.
    pub fused_projections: bool,
    /// The dtype the weights are stored in, as `config.json` declares it.
    pub torch_dtype: Option<String>,
    pub eos_token_ids: Vec<u32>,
    pub bos_token_id: Option<u32>,
    pub pad_token_id: Option<u32>,
    /// The standard deviation new weights (a classification head) are drawn with.
    pub initializer_range: f64,
    /// The classes of a sequence classifier (`*ForSequenceClassification` with `id2label`), whose
    /// `score` head the checkpoint holds in place of the language-model head.
    pub labels: Option<LabelSet>,
}

/// How one decoder layer attends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LayerAttention {
    /// Whether it rotates queries and keys (all but SmolLM3's NoPE layers).
    pub rotary: bool,
    /// Whether it sees only the last `sliding_window` positions.
    pub sliding: bool,
}

/// `config.json` as written by transformers; only what we read.
#[derive(Deserialize)]
struct RawConfig {
    vocab_size: usize,
    hidden_size: usize,
    intermediate_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    num_key_value_heads: Option<usize>,
    head_dim: Option<usize>,
    #[serde(default = "default_eps")]
    rms_norm_eps: f64,
    rope_theta: Option<f64>,
    rope_scaling: Option<serde_json::Value>,
    /// transformers 5 moved `rope_theta` and `rope_scaling` here.
    rope_parameters: Option<serde_json::Value>,
    #[serde(default = "default_max_positions")]
    max_position_embeddings: usize,
    /// Phi-3: the pretrained context, beyond which LongRoPE's long factors apply.
    original_max_position_embeddings: Option<usize>,
    partial_rotary_factor: Option<f64>,
    tie_word_embeddings: Option<bool>,
    #[serde(default)]
    attention_bias: bool,
    #[serde(default)]
    mlp_bias: bool,
    sliding_window: Option<usize>,
    use_sliding_window: Option<bool>,
    /// SmolLM3: per layer, 1 where it applies RoPE and 0 where it does not.
    no_rope_layers: Option<Vec<u8>>,
    no_rope_layer_interval: Option<usize>,
    /// Gemma: `sliding_attention` or `full_attention` per layer.
    layer_types: Option<Vec<String>>,
    /// Gemma 3 before transformers 5: one global layer in this many.
    sliding_window_pattern: Option<usize>,
    /// Gemma 3 before transformers 5: the sliding-window layers' RoPE base.
    rope_local_base_freq: Option<f64>,
    query_pre_attn_scalar: Option<f64>,
    use_bidirectional_attention: Option<bool>,
    attn_logit_softcapping: Option<f64>,
    final_logit_softcapping: Option<f64>,
    hidden_act: Option<String>,
    /// Gemma's name for `hidden_act`.
    hidden_activation: Option<String>,
    torch_dtype: Option<String>,
    dtype: Option<String>,
    eos_token_id: Option<serde_json::Value>,
    bos_token_id: Option<u32>,
    pad_token_id: Option<serde_json::Value>,
    initializer_range: Option<f64>,
    #[serde(default)]
    architectures: Vec<String>,
    id2label: Option<std::collections::BTreeMap<String, String>>,
}

fn default_eps() -> f64 {
    1e-6
}

fn default_max_positions() -> usize {
    2048
}

impl ModelConfig {
    pub fn from_file(path: &Path) -> Result<Self> {
        // The largest real configs (with label maps) are tens of kilobytes.
        let text = crate::fsutil::read_text_bounded(path, 16 << 20)?;
        Self::from_json(&text, path)
    }

    /// Parses `text`, naming `path` in errors.
    pub fn from_json(text: &str, path: &Path) -> Result<Self> {
        let value: serde_json::Value = serde_json::from_str(text).map_err(|e| Error::invalid_file(path, e.to_string()))?;
        let model_type = value.get("model_type").and_then(|v| v.as_str()).unwrap_or("<none>").to_string();
        let architecture = Architecture::from_model_type(&model_type)
            .ok_or_else(|| Error::UnsupportedArchitecture { path: path.to_path_buf(), model_type: model_type.clone() })?;
        // The path names the field at fault: "num_hidden_layers: invalid value: integer `-5`, ...".
        // Gemma 2 soft-caps unless its config says `null`: absent and null differ here.
        let given = |field: &str| value.get(field).is_some();
        let (attn_softcap_given, final_softcap_given) = (given("attn_logit_softcapping"), given("final_logit_softcapping"));
        let raw: RawConfig = serde_path_to_error::deserialize(value)
            .map_err(|e| Error::invalid_file(path, format!("field `{}`: {}", e.path(), e.inner())))?;
        // Each dimension at most several times the largest released model's (vocabularies of
        // 262,144, hidden sizes of 16,384, 126 layers, 128 heads, contexts of 10M), so that a real
        // model always passes and a hostile one cannot make the sizes computed from them overflow
        // or ask for terabytes; the ones every config gives, at least 1.
        let given = [
            ("vocab_size", raw.vocab_size, 1 << 22),
            ("hidden_size", raw.hidden_size, 1 << 18),
            ("intermediate_size", raw.intermediate_size, 1 << 18),
            ("num_hidden_layers", raw.num_hidden_layers, 1 << 12),
            ("num_attention_heads", raw.num_attention_heads, 1 << 12),
            ("max_position_embeddings", raw.max_position_embeddings, 1 << 28),
        ];
        let optional = [("num_key_value_heads", raw.num_key_value_heads, 1 << 12), ("head_dim", raw.head_dim, 1 << 12)];
        if let Some((field, ..)) = given.iter().find(|(_, value, _)| *value == 0) {
            return Err(Error::invalid_file(path, format!("field `{field}` is 0; it must be at least 1")));
        }
        let present = optional.into_iter().filter_map(|(field, value, bound)| Some((field, value?, bound)));
        if let Some((field, value, bound)) = given.into_iter().chain(present).find(|(_, value, bound)| value > bound) {
            return Err(Error::invalid_file(
                path,
                format!("field `{field}` is {value}, past the {bound} of any model wgtune can train: the file is damaged or hostile"),
            ));
        }
        if !(raw.rms_norm_eps > 0.0 && raw.rms_norm_eps.is_finite()) {
            return Err(Error::invalid_file(
                path,
                format!("field `rms_norm_eps` must be a small positive number, not {}", raw.rms_norm_eps),
            ));
        }

        let gemma = architecture.is_gemma();
        if raw.use_bidirectional_attention == Some(true) {
            return Err(Error::invalid_file(
                path,
                "`use_bidirectional_attention` (an embedding model) is not supported: wgtune trains causal models",
            ));
        }
        let activation = match raw.hidden_activation.as_deref().or(raw.hidden_act.as_deref()) {
            None if gemma => Activation::GeluTanh,
            None | Some("silu") => Activation::Silu,
            Some("gelu_pytorch_tanh") => Activation::GeluTanh,
            Some(act) => {
                return Err(Error::invalid_file(path, format!("hidden_act `{act}` is not supported (`silu`, `gelu_pytorch_tanh`)")));
            }
        };
        // transformers' own default for Gemma configs that leave it out.
        let head_dim = raw.head_dim.or(gemma.then_some(256));
        if head_dim.is_none() && !raw.hidden_size.is_multiple_of(raw.num_attention_heads) {
            return Err(Error::invalid_file(path, "hidden_size must be a multiple of num_attention_heads"));
        }
        let num_key_value_heads = raw.num_key_value_heads.unwrap_or(raw.num_attention_heads);
        if num_key_value_heads == 0 || !raw.num_attention_heads.is_multiple_of(num_key_value_heads) {
            return Err(Error::invalid_file(
                path,
                format!(
                    "num_attention_heads ({}) must be a multiple of num_key_value_heads ({num_key_value_heads})",
                    raw.num_attention_heads
                ),
            ));
        }

        // transformers 5 gives Gemma 3 one set of RoPE parameters per kind of layer.
        let per_layer_type = raw.rope_parameters.as_ref().and_then(|p| p.get("full_attention")).is_some();
        let (rope_parameters, local_rope_parameters) = match &raw.rope_parameters {
            Some(p) if per_layer_type => (p.get("full_attention"), p.get("sliding_attention")),
            p => (p.as_ref(), None),
        };
        let theta_of = |p: Option<&serde_json::Value>| p.and_then(|p| p.get("rope_theta")).and_then(|v| v.as_f64());
        let default_theta = if architecture == Architecture::Gemma3 { 1_000_000.0 } else { 10_000.0 };
        let rope_theta = raw.rope_theta.or_else(|| theta_of(rope_parameters)).unwrap_or(default_theta);
        let local_rope_theta = match architecture {
            Architecture::Gemma3 => Some(raw.rope_local_base_freq.or_else(|| theta_of(local_rope_parameters)).unwrap_or(10_000.0)),
            _ => None,
        };
        if local_rope_parameters.and_then(|p| p.get("rope_type")).and_then(|t| t.as_str()).is_some_and(|t| t != "default") {
            return Err(Error::invalid_file(path, "rope_parameters.sliding_attention: only the `default` rope type is supported"));
        }

        let head_dim = head_dim.unwrap_or(raw.hidden_size / raw.num_attention_heads);
        if head_dim == 0 || !head_dim.is_multiple_of(2) {
            return Err(Error::invalid_file(path, format!("head_dim {head_dim} must be even and at least 2 for RoPE")));
        }
        // transformers 5 moved `partial_rotary_factor` into the RoPE parameters.
        let in_rope_parameters = |name: &str| rope_parameters.and_then(|p| p.get(name));
        let partial = raw.partial_rotary_factor.or_else(|| in_rope_parameters("partial_rotary_factor").and_then(|v| v.as_f64()));
        let rotary_dim = match partial {
            // transformers truncates, as `int(head_dim * factor)`.
            Some(factor) if factor > 0.0 && factor <= 1.0 => (head_dim as f64 * factor) as usize,
            Some(factor) => {
                return Err(Error::invalid_file(path, format!("field `partial_rotary_factor` must be in (0, 1], not {factor}")));
            }
            None => head_dim,
        };
        if rotary_dim == 0 || !rotary_dim.is_multiple_of(2) {
            return Err(Error::invalid_file(
                path,
                format!("partial_rotary_factor leaves {rotary_dim} rotary dimensions; they must be even"),
            ));
        }
        let context = RopeContext {
            rotary_dim,
            max_position_embeddings: raw.max_position_embeddings,
            original_max_position_embeddings: raw
                .original_max_position_embeddings
                .or_else(|| in_rope_parameters("original_max_position_embeddings").and_then(|v| v.as_u64()).map(|v| v as usize)),
        };
        let rope_scaling = parse_rope_scaling(raw.rope_scaling.as_ref().or(rope_parameters), &context, path)?;
        if !(rope_theta > 0.0 && rope_theta.is_finite()) {
            return Err(Error::invalid_file(path, format!("field `rope_theta` must be positive, not {rope_theta}")));
        }
        let (qkv_bias, o_bias) = match architecture {
            Architecture::Qwen2 => (true, false),
            Architecture::Llama => (raw.attention_bias, raw.attention_bias),
            Architecture::Qwen3 | Architecture::SmolLm3 | Architecture::Gemma2 | Architecture::Gemma3 | Architecture::Phi3 => {
                (raw.attention_bias, raw.attention_bias)
            }
            Architecture::Mistral => (false, false),
        };
        let labels = classifier_labels(&raw, path)?;
        let sliding_window = match architecture {
            Architecture::Mistral | Architecture::Phi3 => raw.sliding_window,
            Architecture::Qwen2 | Architecture::Qwen3 if raw.use_sliding_window == Some(true) => raw.sliding_window,
            Architecture::Gemma2 | Architecture::Gemma3 => Some(raw.sliding_window.unwrap_or(4096)),
            _ => None,
        };
        if sliding_window == Some(0) {
            return Err(Error::invalid_file(path, "field `sliding_window` is 0; it must be at least 1"));
        }
        let rotary = rotary_layers(&raw, architecture, path)?;
        let sliding = sliding_layers(&raw, architecture, sliding_window.is_some(), path)?;
        let layers = rotary.into_iter().zip(sliding).map(|(rotary, sliding)| LayerAttention { rotary, sliding }).collect();
        let query_pre_attn_scalar = match raw.query_pre_attn_scalar {
            Some(s) if !(s > 0.0 && s.is_finite()) => {
                return Err(Error::invalid_file(path, format!("field `query_pre_attn_scalar` must be positive, not {s}")));
            }
            Some(s) if gemma => s,
            _ if gemma => 256.0,
            _ => head_dim as f64,
        };
        // Gemma 2 caps both unless its config says `null`; transformers' defaults.
        let gemma2 = architecture == Architecture::Gemma2;
        let attn_logit_softcapping = raw.attn_logit_softcapping.or((gemma2 && !attn_softcap_given).then_some(50.0));
        let final_logit_softcapping = raw.final_logit_softcapping.or((gemma2 && !final_softcap_given).then_some(30.0));
        for (field, cap) in [("attn_logit_softcapping", attn_logit_softcapping), ("final_logit_softcapping", final_logit_softcapping)] {
            if cap.is_some_and(|c| !(c > 0.0 && c.is_finite())) {
                return Err(Error::invalid_file(path, format!("field `{field}` must be positive")));
            }
        }

        Ok(Self {
            architecture,
            vocab_size: raw.vocab_size,
            hidden_size: raw.hidden_size,
            intermediate_size: raw.intermediate_size,
            num_hidden_layers: raw.num_hidden_layers,
            num_attention_heads: raw.num_attention_heads,
            num_key_value_heads,
            head_dim,
            rotary_dim,
            rms_norm_eps: raw.rms_norm_eps,
            rope_theta,
            rope_scaling,
            max_position_embeddings: raw.max_position_embeddings,
            tie_word_embeddings: raw.tie_word_embeddings.unwrap_or(gemma),
            qkv_bias,
            o_bias,
            qk_norm: matches!(architecture, Architecture::Qwen3 | Architecture::Gemma3),
            layers,
            mlp_bias: raw.mlp_bias,
            activation,
            sliding_window,
            local_rope_theta,
            scale_embeddings: gemma,
            norm_unit_offset: gemma,
            sandwich_norms: gemma,
            query_pre_attn_scalar,
            attn_logit_softcapping: if gemma { attn_logit_softcapping } else { None },
            final_logit_softcapping: if gemma { final_logit_softcapping } else { None },
            fused_projections: architecture == Architecture::Phi3,
            torch_dtype: raw.torch_dtype.or(raw.dtype),
            eos_token_ids: token_ids(raw.eos_token_id.as_ref()),
            bos_token_id: raw.bos_token_id,
            pad_token_id: token_ids(raw.pad_token_id.as_ref()).first().copied(),
            initializer_range: raw.initializer_range.filter(|r| *r > 0.0 && r.is_finite()).unwrap_or(0.02),
            labels,
        })
    }

    /// Number of parameters, counting tied embeddings once.
    pub fn num_parameters(&self) -> usize {
        let h = self.hidden_size;
        let q = self.num_attention_heads * self.head_dim;
        let kv = self.num_key_value_heads * self.head_dim;
        let attn = h * q + 2 * h * kv + q * h + if self.qkv_bias { q + 2 * kv } else { 0 } + if self.o_bias { h } else { 0 };
        let mlp = 3 * h * self.intermediate_size + if self.mlp_bias { 2 * self.intermediate_size + h } else { 0 };
        let qk_norm = if self.qk_norm { 2 * self.head_dim } else { 0 };
        let norms = if self.sandwich_norms { 4 * h } else { 2 * h };
        let layer = attn + mlp + norms + qk_norm;
        // Fused projections stack the same matrices: the count is the same.
        let embed = self.vocab_size * h;
        let head = if self.tie_word_embeddings { 0 } else { embed };
        embed + head + h + self.num_hidden_layers * layer
    }
}

/// The classes of a `*ForSequenceClassification` checkpoint, by id.
fn classifier_labels(raw: &RawConfig, path: &Path) -> Result<Option<LabelSet>> {
    if !raw.architectures.iter().any(|a| a.ends_with("ForSequenceClassification")) {
        return Ok(None);
    }
    let id2label = raw.id2label.as_ref().ok_or_else(|| Error::invalid_file(path, "a sequence classifier without `id2label`"))?;
    LabelSet::from_id2label(id2label).map(Some).map_err(|e| Error::invalid_file(path, e))
}

/// Which layers apply RoPE: every one, except SmolLM3's NoPE layers (`no_rope_layers`, or one in
/// every `no_rope_layer_interval`, 4 by default, as transformers builds the list).
fn rotary_layers(raw: &RawConfig, architecture: Architecture, path: &Path) -> Result<Vec<bool>> {
    let layers = raw.num_hidden_layers;
    if architecture != Architecture::SmolLm3 {
        return Ok(vec![true; layers]);
    }
    if raw.use_sliding_window == Some(true) {
        return Err(Error::invalid_file(path, "SmolLM3 with `use_sliding_window` is not supported"));
    }
    match &raw.no_rope_layers {
        Some(list) if list.len() != layers => {
            Err(Error::invalid_file(path, format!("field `no_rope_layers` has {} entries for {layers} layers", list.len())))
        }
        Some(list) => Ok(list.iter().map(|&r| r != 0).collect()),
        None => {
            let interval = raw.no_rope_layer_interval.unwrap_or(4).max(1);
            Ok((0..layers).map(|i| !(i + 1).is_multiple_of(interval)).collect())
        }
    }
}

/// Which layers attend through a sliding window: Gemma's `layer_types` (or, in older configs,
/// one global layer in every `sliding_window_pattern`, 2 for Gemma 2 and 6 for Gemma 3, as
/// transformers builds the list); every layer elsewhere when there is a window.
fn sliding_layers(raw: &RawConfig, architecture: Architecture, windowed: bool, path: &Path) -> Result<Vec<bool>> {
    let layers = raw.num_hidden_layers;
    if !architecture.is_gemma() {
        return Ok(vec![windowed; layers]);
    }
    match &raw.layer_types {
        Some(list) if list.len() != layers => {
            Err(Error::invalid_file(path, format!("field `layer_types` has {} entries for {layers} layers", list.len())))
        }
        Some(list) => list
            .iter()
            .enumerate()
            .map(|(i, kind)| match kind.as_str() {
                "sliding_attention" => Ok(true),
                "full_attention" => Ok(false),
                other => Err(Error::invalid_file(
                    path,
                    format!("field `layer_types[{i}]` is `{other}` (expected sliding_attention or full_attention)"),
                )),
            })
            .collect(),
        None => {
            let default = if architecture == Architecture::Gemma2 { 2 } else { 6 };
            let pattern = raw.sliding_window_pattern.unwrap_or(default).max(1);
            Ok((0..layers).map(|i| !(i + 1).is_multiple_of(pattern)).collect())
        }
    }
}

fn token_ids(value: Option<&serde_json::Value>) -> Vec<u32> {
    match value {
        Some(serde_json::Value::Number(n)) => n.as_u64().map(|n| vec![n as u32]).unwrap_or_default(),
        Some(serde_json::Value::Array(items)) => items.iter().filter_map(|v| v.as_u64().map(|n| n as u32)).collect(),
        _ => Vec::new(),
    }
}

/// What RoPE scaling is read against.
struct RopeContext {
    rotary_dim: usize,
    max_position_embeddings: usize,
    original_max_position_embeddings: Option<usize>,
}

fn parse_rope_scaling(value: Option<&serde_json::Value>, context: &RopeContext, path: &Path) -> Result<RopeScaling> {
    let Some(value) = value.filter(|v| !v.is_null()) else {
        return Ok(RopeScaling::None);
    };
    let field = |name: &str| value.get(name).and_then(|v| v.as_f64());
    let kind = value.get("rope_type").or_else(|| value.get("type")).and_then(|v| v.as_str()).unwrap_or("default");
    let require =
        |name: &str| field(name).ok_or_else(|| Error::invalid_file(path, format!("rope_scaling of type `{kind}` needs `{name}`")));
    match kind {
        "default" => Ok(RopeScaling::None),
        "linear" => Ok(RopeScaling::Linear { factor: require("factor")? }),
        "llama3" => Ok(RopeScaling::Llama3 {
            factor: require("factor")?,
            low_freq_factor: require("low_freq_factor")?,
            high_freq_factor: require("high_freq_factor")?,
            original_max_position_embeddings: require("original_max_position_embeddings")?,
        }),
        // `su` is LongRoPE's first name, in Phi-3's early configs.
        "longrope" | "su" => {
            let factors = |name: &str| -> Result<Vec<f64>> {
                let list: Vec<f64> =
                    value.get(name).and_then(|v| v.as_array()).map(|a| a.iter().filter_map(|v| v.as_f64()).collect()).unwrap_or_default();
                if list.len() != context.rotary_dim / 2 {
                    return Err(Error::invalid_file(
                        path,
                        format!(
                            "rope_scaling `{name}` has {} numbers; {} rotary dimensions need {}",
                            list.len(),
                            context.rotary_dim,
                            context.rotary_dim / 2
                        ),
                    ));
                }
                Ok(list)
            };
            let original = context.original_max_position_embeddings.filter(|&o| o > 0).ok_or_else(|| {
                Error::invalid_file(path, "rope_scaling of type `longrope` needs a positive `original_max_position_embeddings`")
            })?;
            // transformers' defaults: the context's growth, and the paper's attention factor.
            let factor = field("factor").unwrap_or(context.max_position_embeddings as f64 / original as f64);
            let attention_factor =
                field("attention_factor").unwrap_or(if factor <= 1.0 { 1.0 } else { (1.0 + factor.ln() / (original as f64).ln()).sqrt() });
            Ok(RopeScaling::LongRope {
                short_factor: factors("short_factor")?,
                long_factor: factors("long_factor")?,
                original_max_position_embeddings: original,
                attention_factor,
            })
        }
        other => {
            Err(Error::invalid_file(path, format!("rope_scaling type `{other}` is not supported (default, linear, llama3, longrope)")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<ModelConfig> {
        ModelConfig::from_json(json, Path::new("config.json"))
    }

    const BASE: &str = r#""vocab_size": 100, "hidden_size": 64, "intermediate_size": 128,
        "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2"#;

    #[test]
    fn unknown_architecture_names_it_and_the_supported_ones() {
        let err = parse(&format!(r#"{{"model_type": "gpt2", {BASE}}}"#)).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("`gpt2`"), "{text}");
        assert!(text.contains("llama, mistral, qwen2"), "{text}");
        assert!(text.contains("config.json"), "{text}");
    }

    #[test]
    fn a_multimodal_gemma_3_points_to_its_text_siblings() {
        let err = parse(&format!(r#"{{"model_type": "gemma3", {BASE}}}"#)).unwrap_err().to_string();
        assert!(err.contains("`gemma3`") && err.contains("gemma3_text") && err.contains("gemma-3-1b"), "{err}");
    }

    #[test]
    fn rope_theta_is_read_from_rope_parameters() {
        let cfg =
            parse(&format!(r#"{{"model_type": "llama", {BASE}, "rope_parameters": {{"rope_type": "default", "rope_theta": 500000.0}}}}"#))
                .unwrap();
        assert_eq!(cfg.rope_theta, 500000.0);
        assert_eq!(cfg.rope_scaling, RopeScaling::None);
        assert_eq!(cfg.head_dim, 16);
    }

    #[test]
    fn a_dimension_past_any_real_model_is_refused() {
        for (field, value) in
            [("vocab_size", 1u64 << 40), ("hidden_size", 1 << 20), ("num_hidden_layers", 1_000_000), ("max_position_embeddings", 1 << 40)]
        {
            let json = format!(r#"{{"model_type": "llama", {BASE}}}"#);
            let mut config: serde_json::Value = serde_json::from_str(&json).unwrap();
            config[field] = value.into();
            let err = parse(&config.to_string()).unwrap_err().to_string();
            assert!(err.starts_with(&format!("config.json: field `{field}` is {value}, past the ")), "{err}");
        }
    }

    #[test]
    fn a_bad_value_names_its_field() {
        let err = parse(&format!(r#"{{"model_type": "llama", {BASE}, "max_position_embeddings": -5}}"#)).unwrap_err().to_string();
        assert!(err.starts_with("config.json: field `max_position_embeddings`: invalid value: integer `-5`"), "{err}");
        let zero_layers =
            format!(r#"{{"model_type": "llama", {}}}"#, BASE.replace(r#""num_hidden_layers": 2"#, r#""num_hidden_layers": 0"#));
        assert_eq!(parse(&zero_layers).unwrap_err().to_string(), "config.json: field `num_hidden_layers` is 0; it must be at least 1");
    }

    #[test]
    fn qwen2_has_qkv_bias_and_no_output_bias() {
        let cfg = parse(&format!(r#"{{"model_type": "qwen2", {BASE}}}"#)).unwrap();
        assert!(cfg.qkv_bias && !cfg.o_bias);
    }

    #[test]
    fn unsupported_rope_type_is_an_error() {
        let err =
            parse(&format!(r#"{{"model_type": "llama", {BASE}, "rope_scaling": {{"rope_type": "yarn", "factor": 4.0}}}}"#)).unwrap_err();
        assert!(err.to_string().contains("yarn"));
    }

    #[test]
    fn gemma2_caps_unless_its_config_says_null() {
        let cfg = parse(&format!(r#"{{"model_type": "gemma2", {BASE}}}"#)).unwrap();
        assert_eq!((cfg.attn_logit_softcapping, cfg.final_logit_softcapping), (Some(50.0), Some(30.0)));
        assert_eq!(cfg.layers.iter().map(|l| l.sliding).collect::<Vec<_>>(), [true, false]);
        assert_eq!((cfg.head_dim, cfg.query_pre_attn_scalar, cfg.sliding_window), (256, 256.0, Some(4096)));
        assert!(cfg.tie_word_embeddings && cfg.norm_unit_offset && cfg.scale_embeddings && cfg.sandwich_norms);
        assert_eq!(cfg.activation, Activation::GeluTanh);
        let uncapped =
            parse(&format!(r#"{{"model_type": "gemma2", {BASE}, "attn_logit_softcapping": null, "final_logit_softcapping": null}}"#))
                .unwrap();
        assert_eq!((uncapped.attn_logit_softcapping, uncapped.final_logit_softcapping), (None, None));
    }

    #[test]
    fn gemma3_reads_the_older_config_fields() {
        // As google/gemma-3-1b-it's config.json has them, before transformers 5.
        let seven_layers = BASE.replace(r#""num_hidden_layers": 2"#, r#""num_hidden_layers": 7"#);
        let cfg = parse(&format!(
            r#"{{"model_type": "gemma3_text", {seven_layers}, "sliding_window_pattern": 6,
            "rope_theta": 1000000.0, "rope_local_base_freq": 10000.0, "rope_scaling": {{"rope_type": "linear", "factor": 8.0}}}}"#
        ))
        .unwrap();
        let sliding: Vec<bool> = cfg.layers.iter().map(|l| l.sliding).collect();
        assert_eq!(sliding, [true, true, true, true, true, false, true]);
        assert_eq!((cfg.rope_theta, cfg.local_rope_theta), (1_000_000.0, Some(10_000.0)));
        assert_eq!(cfg.rope_scaling, RopeScaling::Linear { factor: 8.0 });
        assert!(cfg.qk_norm && cfg.attn_logit_softcapping.is_none() && cfg.final_logit_softcapping.is_none());
    }

    #[test]
    fn a_bad_layer_type_names_its_index() {
        let err = parse(&format!(r#"{{"model_type": "gemma2", {BASE}, "layer_types": ["sliding_attention", "chunked_attention"]}}"#))
            .unwrap_err()
            .to_string();
        assert!(err.contains("layer_types[1]") && err.contains("chunked_attention"), "{err}");
        let err = parse(&format!(r#"{{"model_type": "llama", {BASE}, "hidden_act": "relu"}}"#)).unwrap_err().to_string();
        assert!(err.contains("`relu`"), "{err}");
    }

    #[test]
    fn phi3_reads_longrope_and_partial_rotary() {
        // As microsoft/Phi-3-mini-128k-instruct's config.json has them (`su`, top-level fields).
        let factors = |n: usize, v: f64| format!("[{}]", vec![v.to_string(); n].join(", "));
        let cfg = parse(&format!(
            r#"{{"model_type": "phi3", {BASE}, "max_position_embeddings": 131072, "original_max_position_embeddings": 4096,
            "partial_rotary_factor": 0.75, "rope_scaling": {{"type": "su", "short_factor": {}, "long_factor": {}}}}}"#,
            factors(6, 1.0),
            factors(6, 2.0)
        ))
        .unwrap();
        assert!(cfg.fused_projections);
        assert_eq!((cfg.head_dim, cfg.rotary_dim), (16, 12));
        let RopeScaling::LongRope { original_max_position_embeddings, attention_factor, .. } = cfg.rope_scaling else {
            panic!("{:?}", cfg.rope_scaling)
        };
        assert_eq!(original_max_position_embeddings, 4096);
        assert!((attention_factor - (1.0 + 32f64.ln() / 4096f64.ln()).sqrt()).abs() < 1e-12);
        let err = parse(&format!(
            r#"{{"model_type": "phi3", {BASE}, "original_max_position_embeddings": 16,
            "rope_scaling": {{"type": "longrope", "short_factor": [1.0], "long_factor": [1.0]}}}}"#
        ))
        .unwrap_err()
        .to_string();
        assert!(err.contains("`short_factor` has 1 numbers; 16 rotary dimensions need 8"), "{err}");
    }

    #[test]
    fn parameter_count_matches_smollm2_135m() {
        let cfg = parse(
            r#"{"model_type": "llama", "vocab_size": 49152, "hidden_size": 576, "intermediate_size": 1536,
            "num_hidden_layers": 30, "num_attention_heads": 9, "num_key_value_heads": 3, "tie_word_embeddings": true}"#,
        )
        .unwrap();
        assert_eq!(cfg.num_parameters(), 134_515_008);
    }
}
