//! The Llama-family decoder (Llama 2/3, SmolLM, Mistral, Qwen2), read top to bottom like the
//! paper: embed, then per layer `h += attn(norm(h))`, `h += mlp(norm(h))`, then norm and the
//! language-model head.
//!
//! Field names follow the Hugging Face checkpoint, so a parameter's Burn module path is its
//! checkpoint name without the leading `model.` (see [`hf_name`]).

use burn::module::{Module, Param};
use burn::tensor::{Device, Int, Tensor};

use super::config::ModelConfig;
use super::linear::{Linear, LoraForward};
use super::rope::{Rope, apply_rotary};
use crate::kernels;

#[derive(Module, Debug)]
pub struct RmsNorm {
    pub weight: Param<Tensor<1>>,
    eps: f64,
}

impl RmsNorm {
    pub fn new(weight: Param<Tensor<1>>, eps: f64) -> Self {
        Self { weight, eps }
    }

    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let rms = x.clone().square().mean_dim(2).add_scalar(self.eps).sqrt();
        x / rms * self.weight.val().unsqueeze::<3>()
    }
}

#[derive(Module, Debug)]
pub struct Attention {
    pub q_proj: Linear,
    pub k_proj: Linear,
    pub v_proj: Linear,
    pub o_proj: Linear,
    num_heads: usize,
    num_kv_heads: usize,
    head_dim: usize,
}

#[derive(Module, Debug)]
pub struct Mlp {
    pub gate_proj: Linear,
    pub up_proj: Linear,
    pub down_proj: Linear,
}

#[derive(Module, Debug)]
pub struct DecoderLayer {
    pub input_layernorm: RmsNorm,
    pub self_attn: Attention,
    pub post_attention_layernorm: RmsNorm,
    pub mlp: Mlp,
}

#[derive(Module, Debug)]
pub struct Embedding {
    /// `[vocab, hidden]`, as in the checkpoint.
    pub weight: Param<Tensor<2>>,
}

/// A causal language model. `lm_head` is `None` when it is tied to `embed_tokens`.
#[derive(Module, Debug)]
pub struct CausalLm {
    pub embed_tokens: Embedding,
    pub layers: Vec<DecoderLayer>,
    pub norm: RmsNorm,
    pub lm_head: Option<Linear>,
    #[module(skip)]
    pub config: ModelConfig,
    #[module(skip)]
    rope: Rope,
}

/// A parameter of either rank, borrowed from the model.
#[derive(Clone, Copy, Debug)]
pub enum ParamRef<'a> {
    Vector(&'a Param<Tensor<1>>),
    Matrix(&'a Param<Tensor<2>>),
}

/// Keys and values of the positions already seen, per layer, for incremental decoding.
#[derive(Clone, Debug, Default)]
pub struct KvCache {
    layers: Vec<Option<(Tensor<4>, Tensor<4>)>>,
}

impl KvCache {
    pub fn new(num_layers: usize) -> Self {
        Self { layers: vec![None; num_layers] }
    }

    /// Number of positions cached.
    pub fn len(&self) -> usize {
        self.layers.first().and_then(|l| l.as_ref()).map(|(k, _)| k.dims()[2]).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Everything a forward pass needs besides the tokens.
#[derive(Clone, Copy, Debug)]
pub struct ForwardOptions {
    pub lora: LoraForward,
    /// Use the fused WGSL kernels where the device allows (off: plain tensor operations).
    pub fused: bool,
}

impl Default for ForwardOptions {
    fn default() -> Self {
        Self { lora: LoraForward::default(), fused: true }
    }
}

impl Mlp {
    fn forward(&self, x: Tensor<3>, options: ForwardOptions) -> Tensor<3> {
        let lora = options.lora;
        let gate = self.gate_proj.forward(x.clone(), lora);
        let up = self.up_proj.forward(x, lora);
        self.down_proj.forward(kernels::swiglu(gate, up, options.fused), lora)
    }
}

impl Attention {
    pub fn new(q_proj: Linear, k_proj: Linear, v_proj: Linear, o_proj: Linear, config: &ModelConfig) -> Self {
        Self {
            q_proj,
            k_proj,
            v_proj,
            o_proj,
            num_heads: config.num_attention_heads,
            num_kv_heads: config.num_key_value_heads,
            head_dim: config.head_dim,
        }
    }

    fn forward(
        &self,
        x: Tensor<3>,
        rope: &(Tensor<2>, Tensor<2>),
        position: Position,
        cache: Option<&mut Option<(Tensor<4>, Tensor<4>)>>,
        options: ForwardOptions,
    ) -> Tensor<3> {
        let [batch, len, _] = x.dims();
        let (heads, kv_heads, head_dim) = (self.num_heads, self.num_kv_heads, self.head_dim);
        let lora = options.lora;
        let split = |t: Tensor<3>, n: usize| t.reshape([batch, len, n, head_dim]).swap_dims(1, 2);

        let q = apply_rotary(split(self.q_proj.forward(x.clone(), lora), heads), &rope.0, &rope.1);
        let mut k = apply_rotary(split(self.k_proj.forward(x.clone(), lora), kv_heads), &rope.0, &rope.1);
        let mut v = split(self.v_proj.forward(x, lora), kv_heads);
        if let Some(cache) = cache {
            if let Some((past_k, past_v)) = cache.take() {
                k = Tensor::cat(vec![past_k, k], 2);
                v = Tensor::cat(vec![past_v, v], 2);
            }
            *cache = Some((k.clone(), v.clone()));
        }
        let out = kernels::attention(q, k, v, position.start, position.window, options.fused);
        let out = out.swap_dims(1, 2).reshape([batch, len, heads * head_dim]);
        self.o_proj.forward(out, lora)
    }
}

/// Where the tokens of a forward pass sit: the absolute position of the first, and how far back
/// attention reaches.
#[derive(Clone, Copy, Debug)]
struct Position {
    start: usize,
    window: Option<usize>,
}

impl DecoderLayer {
    fn forward(
        &self,
        h: Tensor<3>,
        rope: &(Tensor<2>, Tensor<2>),
        position: Position,
        cache: Option<&mut Option<(Tensor<4>, Tensor<4>)>>,
        options: ForwardOptions,
    ) -> Tensor<3> {
        let attn = self.self_attn.forward(self.input_layernorm.forward(h.clone()), rope, position, cache, options);
        let h = h + attn;
        let mlp = self.mlp.forward(self.post_attention_layernorm.forward(h.clone()), options);
        h + mlp
    }
}

impl CausalLm {
    pub fn new(embed_tokens: Embedding, layers: Vec<DecoderLayer>, norm: RmsNorm, lm_head: Option<Linear>, config: ModelConfig) -> Self {
        let rope = Rope::new(&config);
        Self { embed_tokens, layers, norm, lm_head, config, rope }
    }

    pub fn num_layers(&self) -> usize {
        self.layers.len()
    }

    pub fn device(&self) -> Device {
        self.embed_tokens.weight.device()
    }

    /// Hidden states after the final norm, `[batch, len, hidden]`, for tokens placed after the
    /// positions already in `cache` (or at position 0 without one).
    pub fn hidden_states(&self, input_ids: Tensor<2, Int>, mut cache: Option<&mut KvCache>, options: ForwardOptions) -> Tensor<3> {
        let device = input_ids.device();
        let [_, len] = input_ids.dims();
        let start = cache.as_ref().map(|c| c.len()).unwrap_or(0);
        let tables = self.rope.tables(start, len, &device);
        let position = Position { start, window: self.config.sliding_window };

        let mut h = burn::tensor::module::embedding(self.embed_tokens.weight.val(), input_ids);
        for (i, layer) in self.layers.iter().enumerate() {
            let layer_cache = cache.as_deref_mut().map(|c| &mut c.layers[i]);
            h = layer.forward(h, &tables, position, layer_cache, options);
        }
        self.norm.forward(h)
    }

    /// Every parameter with its module path, in checkpoint order. Unlike a module visitor, this
    /// sees the parameters as the model uses them, LoRA adapters attached.
    pub fn parameters(&self) -> Vec<(String, ParamRef<'_>)> {
        let mut out = vec![("embed_tokens.weight".to_string(), ParamRef::Matrix(&self.embed_tokens.weight))];
        fn linear<'a>(out: &mut Vec<(String, ParamRef<'a>)>, path: String, l: &'a Linear) {
            if let Some(bias) = &l.bias {
                out.push((format!("{path}.bias"), ParamRef::Vector(bias)));
            }
            out.push((format!("{path}.weight"), ParamRef::Matrix(&l.weight)));
        }
        for (i, layer) in self.layers.iter().enumerate() {
            let p = |name: &str| format!("layers.{i}.{name}");
            out.push((p("input_layernorm.weight"), ParamRef::Vector(&layer.input_layernorm.weight)));
            let a = &layer.self_attn;
            for (name, l) in [("q_proj", &a.q_proj), ("k_proj", &a.k_proj), ("v_proj", &a.v_proj), ("o_proj", &a.o_proj)] {
                linear(&mut out, p(&format!("self_attn.{name}")), l);
            }
            out.push((p("post_attention_layernorm.weight"), ParamRef::Vector(&layer.post_attention_layernorm.weight)));
            let m = &layer.mlp;
            for (name, l) in [("gate_proj", &m.gate_proj), ("up_proj", &m.up_proj), ("down_proj", &m.down_proj)] {
                linear(&mut out, p(&format!("mlp.{name}")), l);
            }
        }
        out.push(("norm.weight".to_string(), ParamRef::Vector(&self.norm.weight)));
        if let Some(head) = &self.lm_head {
            linear(&mut out, "lm_head".to_string(), head);
        }
        out
    }

    /// The output projection `[hidden, vocab]`.
    pub fn head_weight(&self) -> Tensor<2> {
        match &self.lm_head {
            Some(head) => head.merged_weight(),
            None => self.embed_tokens.weight.val().transpose(),
        }
    }

    /// Logits for every position, `[batch, len, vocab]`. Training uses the chunked loss in
    /// `train::loss` instead, which never holds the whole `[tokens, vocab]` matrix.
    pub fn logits(&self, hidden: Tensor<3>) -> Tensor<3> {
        let [batch, len, dim] = hidden.dims();
        let logits = hidden.reshape([batch * len, dim]).matmul(self.head_weight());
        let vocab = logits.dims()[1];
        logits.reshape([batch, len, vocab])
    }
}

/// The Hugging Face checkpoint name of a parameter, from its Burn module path.
pub fn hf_name(path: &str) -> String {
    if path.starts_with("lm_head") { path.to_string() } else { format!("model.{path}") }
}

/// The Burn module path of a checkpoint tensor; the inverse of [`hf_name`].
pub fn module_path(hf_name: &str) -> String {
    hf_name.strip_prefix("model.").unwrap_or(hf_name).to_string()
}

/// Whether the parameter at `path` is a linear weight, stored `[in, out]` here and `[out, in]`
/// in checkpoints.
pub fn is_transposed(path: &str) -> bool {
    path.ends_with("_proj.weight") || path == "lm_head.weight"
}
