//! The Llama-family decoder (Llama 2/3, SmolLM, Mistral, Qwen2/3, Gemma 2/3, Phi-3), read top
//! to bottom like the paper: embed, then per layer `h += attn(norm(h))`, `h += mlp(norm(h))`, then
//! norm and the language-model head. The families differ in the config fields that name each
//! variation (see [`ModelConfig`]).
//!
//! Field names follow the Hugging Face checkpoint, so a parameter's Burn module path is its
//! checkpoint name without the leading `model.` (see [`hf_name`]).

use std::sync::Arc;

use burn::module::{Module, Param};
use burn::tensor::{Device, Int, Tensor};

use super::activation::Activation;
use super::config::{LayerAttention, ModelConfig};
use super::linear::{Linear, LoraForward};
use super::packed::{HostPacked, PackedWeight};
use super::precision::{Precision, to_f32};
use super::rope::Rope;
use super::shared_base::SharedBase;
use super::vocabulary::{HostTable, RowBlocks};
use crate::classify::LabelSet;
use crate::kernels;

#[derive(Module, Debug)]
pub struct RmsNorm {
    pub weight: Param<Tensor<1>>,
    eps: f64,
    /// Gemma multiplies by `1 + weight`.
    unit_offset: bool,
}

impl RmsNorm {
    pub fn new(weight: Param<Tensor<1>>, eps: f64, unit_offset: bool) -> Self {
        Self { weight, eps, unit_offset }
    }

    /// Normalises the last dimension; `fused` picks the fused operation.
    pub fn forward<const D: usize>(&self, x: Tensor<D>, fused: bool) -> Tensor<D> {
        let weight = if self.unit_offset { self.weight.val().add_scalar(1.0) } else { self.weight.val() };
        kernels::rms_norm(x, weight, self.eps, fused)
    }
}

/// The query, key and value projections as a checkpoint stores them.
#[allow(clippy::large_enum_variant)] // Only passed to a constructor.
pub enum QkvProjections {
    /// `q_proj`, `k_proj`, `v_proj`.
    Separate(Linear, Linear, Linear),
    /// Phi-3's `qkv_proj`: the three stacked along the output, `[q; k; v]`.
    Fused(Linear),
}

/// The attention of a decoder layer. Exactly one of `q_proj`/`k_proj`/`v_proj` (all three) and
/// `qkv_proj` is set (see [`QkvProjections`]): each field is a checkpoint name, which LoRA
/// targets and exports keep.
#[derive(Module, Debug)]
pub struct Attention {
    pub q_proj: Option<Linear>,
    pub k_proj: Option<Linear>,
    pub v_proj: Option<Linear>,
    pub qkv_proj: Option<Linear>,
    /// The frozen bases of `q_proj`, `k_proj` and `v_proj` side by side, when they share one
    /// product (see [`SharedBase`]).
    pub qkv_base: Option<SharedBase>,
    pub o_proj: Linear,
    /// Qwen3's RMSNorm over each head of the queries and keys, before the rotation.
    pub q_norm: Option<RmsNorm>,
    pub k_norm: Option<RmsNorm>,
    /// Whether the layer rotates queries and keys (SmolLM3 leaves some layers without RoPE).
    rotary: bool,
    /// Whether it sees only the last `sliding_window` positions (with Gemma 3's local RoPE).
    sliding: bool,
    /// What the queries are multiplied by so that the kernels' `1/√head_dim` gives the model's
    /// own score scale (Gemma's `query_pre_attn_scalar`); `None` when they agree.
    query_scale: Option<f64>,
    /// Gemma 2's soft cap on the scores.
    softcap: Option<f64>,
    num_heads: usize,
    num_kv_heads: usize,
    head_dim: usize,
}

/// The gate and up projections as a checkpoint stores them.
#[allow(clippy::large_enum_variant)] // Only passed to a constructor.
pub enum GateUpProjections {
    /// `gate_proj`, `up_proj`.
    Separate(Linear, Linear),
    /// Phi-3's `gate_up_proj`: the two stacked along the output, `[gate; up]`.
    Fused(Linear),
}

/// The gated MLP. Either `gate_proj` and `up_proj` or `gate_up_proj` is set (see
/// [`GateUpProjections`]).
#[derive(Module, Debug)]
pub struct Mlp {
    pub gate_proj: Option<Linear>,
    pub up_proj: Option<Linear>,
    pub gate_up_proj: Option<Linear>,
    /// The frozen bases of `gate_proj` and `up_proj` side by side, when they share one product.
    pub gate_up_base: Option<SharedBase>,
    pub down_proj: Linear,
    #[module(skip)]
    activation: Activation,
    #[module(skip)]
    intermediate_size: usize,
}

/// A decoder layer. Llama's `post_attention_layernorm` normalises the MLP's input; Gemma's
/// normalises the attention's output before the residual, with `pre_feedforward_layernorm` and
/// `post_feedforward_layernorm` around the MLP (`sandwich_norms`).
#[derive(Module, Debug)]
pub struct DecoderLayer {
    pub input_layernorm: RmsNorm,
    pub self_attn: Attention,
    pub post_attention_layernorm: RmsNorm,
    pub pre_feedforward_layernorm: Option<RmsNorm>,
    pub post_feedforward_layernorm: Option<RmsNorm>,
    pub mlp: Mlp,
}

#[derive(Module, Debug)]
pub struct Embedding {
    /// `[vocab, hidden]`, as in the checkpoint. With the table on the host, a placeholder of
    /// that shape that holds no values (see [`Linear::packed`]).
    pub weight: Param<Tensor<2>>,
    /// A packed base's table in blocks on the device, when it is also the output projection
    /// (tied embeddings).
    pub packed: Option<PackedWeight>,
    /// The table on the host, where a batch's rows are looked up: a packed base's (dequantized
    /// there, so the device never holds it dense) or a frozen table larger than one storage
    /// binding (see `vocabulary.rs`).
    #[module(skip)]
    pub host: Option<Arc<HostTable>>,
}

impl Embedding {
    pub fn dense(weight: Param<Tensor<2>>) -> Self {
        Self { weight, packed: None, host: None }
    }

    /// A frozen table in blocks, looked up on the host; `tied`: also kept on the device as the
    /// output projection.
    pub fn packed(host: HostPacked, tied: bool, device: &Device) -> Self {
        let shape = [host.layout.rows, host.layout.cols];
        let packed = tied.then(|| PackedWeight::to_device(&host, device));
        Self { weight: super::packed::placeholder(shape, device), packed, host: Some(Arc::new(HostTable::Packed(host))) }
    }

    /// A frozen dense table `[rows, cols]` (row-major f32) looked up on the host.
    pub fn on_host(values: Vec<f32>, rows: usize, cols: usize, device: &Device) -> Self {
        let host = HostTable::Dense { values, cols };
        Self { weight: super::packed::placeholder([rows, cols], device), packed: None, host: Some(Arc::new(host)) }
    }
}

/// The output projection as a forward pass multiplies by it.
pub struct Head<'a> {
    pub weight: HeadWeight<'a>,
    /// Logits pass through `cap · tanh(logit / cap)` (Gemma 2).
    pub softcap: Option<f64>,
}

/// The output projection's weight.
#[allow(clippy::large_enum_variant)] // One per forward pass, never stored.
pub enum HeadWeight<'a> {
    /// `[hidden, vocab]`, in the precision the weights are stored in.
    Dense(Tensor<2>),
    /// `[vocab, hidden]` in blocks (a packed base).
    Packed(&'a PackedWeight),
    /// `[hidden, vocab_i]` for each block of a head larger than one storage binding, left to
    /// right (see `vocabulary.rs`).
    Blocks(Vec<Tensor<2>>),
}

impl Head<'_> {
    /// Logits `[rows, vocab]` of hidden states `[rows, hidden]`; `fused` picks the WGSL matmul
    /// for a dense head (a packed one always takes the packed kernels).
    pub fn logits(&self, x: Tensor<2>, fused: bool) -> Tensor<2> {
        let logits = match &self.weight {
            HeadWeight::Dense(w) => kernels::matmul(x, w.clone(), fused),
            HeadWeight::Packed(w) => kernels::packed_matmul(x, w),
            HeadWeight::Blocks(blocks) => super::vocabulary::project(x, blocks, fused),
        };
        match self.softcap {
            Some(cap) => logits.div_scalar(cap).tanh().mul_scalar(cap),
            None => logits,
        }
    }

    /// A dense head cast for matmuls in `compute` (f16 runs multiply by an f16 head).
    pub fn in_precision(self, compute: Precision) -> Self {
        let weight = match self.weight {
            HeadWeight::Dense(w) => HeadWeight::Dense(compute.matmul_weight(w)),
            HeadWeight::Blocks(blocks) => HeadWeight::Blocks(blocks.into_iter().map(|w| compute.matmul_weight(w)).collect()),
            packed => packed,
        };
        Self { weight, ..self }
    }
}

/// A causal language model. `lm_head` is `None` when it is tied to `embed_tokens`, or when the
/// output projection (tied or not) is in `head_blocks`: frozen, and larger than one storage
/// binding.
///
/// With a `score` head it is a sequence classifier instead (transformers'
/// `*ForSequenceClassification`): the head `[hidden, num_labels]`, without bias, reads the hidden
/// state at each sequence's last non-padding position, and there is no language-model head.
#[derive(Module, Debug)]
pub struct CausalLm {
    pub embed_tokens: Embedding,
    pub layers: Vec<DecoderLayer>,
    pub norm: RmsNorm,
    pub lm_head: Option<Linear>,
    pub head_blocks: Option<RowBlocks>,
    pub score: Option<Linear>,
    #[module(skip)]
    pub config: ModelConfig,
    #[module(skip)]
    rope: Rope,
    /// Gemma 3's rotation for its sliding-window layers.
    #[module(skip)]
    local_rope: Option<Rope>,
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
    /// Reseed the dropout masks (and the device's random generator) before each decoder layer
    /// from this, so that a layer recomputed in the backward pass, or a resumed run, draws the
    /// same dropout masks as the first forward.
    pub dropout_seed: Option<u64>,
    /// The precision of the matmuls against weight matrices (see [`Precision`]).
    pub compute: Precision,
}

impl Default for ForwardOptions {
    fn default() -> Self {
        Self { lora: LoraForward::default(), fused: true, dropout_seed: None, compute: Precision::F32 }
    }
}

/// Where the tokens of a forward pass sit, shared by every decoder layer: the rotary tables for
/// their positions, the absolute position of the first, and how far back attention reaches.
#[derive(Clone, Debug)]
pub struct LayerContext {
    rope: (Tensor<3>, Tensor<3>),
    /// The sliding-window layers' tables, where their RoPE base differs (Gemma 3).
    local_rope: Option<(Tensor<3>, Tensor<3>)>,
    start: usize,
    window: Option<usize>,
    /// The additive mask hiding each sequence's left padding from every query (a batch of
    /// prompts of different lengths); `None` when there is none.
    padding: Option<Tensor<4>>,
}

impl Mlp {
    pub fn new(gate_up: GateUpProjections, down_proj: Linear, config: &ModelConfig) -> Self {
        let (gate_proj, up_proj, gate_up_proj) = match gate_up {
            GateUpProjections::Separate(gate, up) => (Some(gate), Some(up), None),
            GateUpProjections::Fused(gate_up) => (None, None, Some(gate_up)),
        };
        Self {
            gate_proj,
            up_proj,
            gate_up_proj,
            gate_up_base: None,
            down_proj,
            activation: config.activation,
            intermediate_size: config.intermediate_size,
        }
    }

    fn forward(&self, x: Tensor<3>, options: ForwardOptions) -> Tensor<3> {
        let (gate, up) = match (&self.gate_up_proj, &self.gate_proj, &self.up_proj) {
            (Some(gate_up), ..) => {
                let both = gate_up.forward(x, options);
                let i = self.intermediate_size;
                (both.clone().narrow(2, 0, i), both.narrow(2, i, i))
            }
            (None, Some(gate), Some(up)) => match &self.gate_up_base {
                Some(shared) => shared.forward(x, [gate, up], options).into(),
                None => (gate.forward(x.clone(), options), up.forward(x, options)),
            },
            _ => unreachable!("Mlp::new sets gate and up, or gate_up"),
        };
        self.down_proj.forward(self.activation.gated(gate, up, options.fused), options)
    }
}

impl Attention {
    /// `qk_norm`: the per-head norms of the queries and keys (Qwen3, Gemma 3); `layer`: how this
    /// layer attends.
    pub fn new(
        qkv: QkvProjections,
        o_proj: Linear,
        qk_norm: Option<(RmsNorm, RmsNorm)>,
        layer: LayerAttention,
        config: &ModelConfig,
    ) -> Self {
        let (q_norm, k_norm) = qk_norm.unzip();
        let (q_proj, k_proj, v_proj, qkv_proj) = match qkv {
            QkvProjections::Separate(q, k, v) => (Some(q), Some(k), Some(v), None),
            QkvProjections::Fused(qkv) => (None, None, None, Some(qkv)),
        };
        let head_dim = config.head_dim as f64;
        let query_scale = (config.query_pre_attn_scalar != head_dim).then(|| (head_dim / config.query_pre_attn_scalar).sqrt());
        Self {
            q_proj,
            k_proj,
            v_proj,
            qkv_proj,
            qkv_base: None,
            o_proj,
            q_norm,
            k_norm,
            rotary: layer.rotary,
            sliding: layer.sliding,
            query_scale,
            softcap: config.attn_logit_softcapping,
            num_heads: config.num_attention_heads,
            num_kv_heads: config.num_key_value_heads,
            head_dim: config.head_dim,
        }
    }

    fn forward(
        &self,
        x: Tensor<3>,
        context: &LayerContext,
        cache: Option<&mut Option<(Tensor<4>, Tensor<4>)>>,
        options: ForwardOptions,
    ) -> Tensor<3> {
        let [batch, len, _] = x.dims();
        let (heads, kv_heads, head_dim) = (self.num_heads, self.num_kv_heads, self.head_dim);
        // Into heads, each normalised on its own where the model says (before the heads move to
        // axis 1, so that each head's row is contiguous).
        let split = |t: Tensor<3>, n: usize, norm: &Option<RmsNorm>| {
            let t = t.reshape([batch, len, n, head_dim]);
            let t = match norm {
                Some(norm) => norm.forward(t, options.fused),
                None => t,
            };
            t.swap_dims(1, 2)
        };
        let (cos, sin) = match &context.local_rope {
            Some(local) if self.sliding => local,
            _ => &context.rope,
        };
        let rotate = |t: Tensor<4>| if self.rotary { kernels::rotary(t, cos, sin, options.fused) } else { t };
        let (q, k, v) = self.project(x, options);
        let q = rotate(split(q, heads, &self.q_norm));
        let q = match self.query_scale {
            Some(scale) => q.mul_scalar(scale),
            None => q,
        };
        let mut k = rotate(split(k, kv_heads, &self.k_norm));
        let mut v = split(v, kv_heads, &None);
        if let Some(cache) = cache {
            if let Some((past_k, past_v)) = cache.take() {
                k = Tensor::cat(vec![past_k, k], 2);
                v = Tensor::cat(vec![past_v, v], 2);
            }
            *cache = Some((k.clone(), v.clone()));
        }
        let scores = kernels::Scores {
            start: context.start,
            window: if self.sliding { context.window } else { None },
            padding: context.padding.as_ref(),
            softcap: self.softcap,
        };
        let out = kernels::attention(q, k, v, &scores, options.fused);
        let out = out.swap_dims(1, 2).reshape([batch, len, heads * head_dim]);
        self.o_proj.forward(out, options)
    }
}

impl Attention {
    /// The queries, keys and values of `x`, `[batch, len, heads · head_dim]` each.
    fn project(&self, x: Tensor<3>, options: ForwardOptions) -> (Tensor<3>, Tensor<3>, Tensor<3>) {
        match (&self.qkv_proj, &self.q_proj, &self.k_proj, &self.v_proj) {
            (Some(qkv), ..) => {
                let all = qkv.forward(x, options);
                let (q, kv) = (self.num_heads * self.head_dim, self.num_kv_heads * self.head_dim);
                (all.clone().narrow(2, 0, q), all.clone().narrow(2, q, kv), all.narrow(2, q + kv, kv))
            }
            (None, Some(q), Some(k), Some(v)) => match &self.qkv_base {
                Some(shared) => shared.forward(x, [q, k, v], options).into(),
                None => (q.forward(x.clone(), options), k.forward(x.clone(), options), v.forward(x, options)),
            },
            _ => unreachable!("Attention::new sets q, k and v, or qkv"),
        }
    }

    /// Moves the frozen bases of `q_proj`, `k_proj` and `v_proj` into one shared base, where all
    /// three are frozen and stored alike (see [`SharedBase::take`]).
    fn share_frozen_bases(mut self, device: &Device) -> Self {
        if self.qkv_base.is_some() {
            return self;
        }
        if let (Some(q), Some(k), Some(v)) = (&mut self.q_proj, &mut self.k_proj, &mut self.v_proj) {
            self.qkv_base = SharedBase::take(&mut [q, k, v], device);
        }
        self
    }
}

impl Mlp {
    /// [`Attention::share_frozen_bases`] for `gate_proj` and `up_proj`.
    fn share_frozen_bases(mut self, device: &Device) -> Self {
        if self.gate_up_base.is_some() {
            return self;
        }
        if let (Some(gate), Some(up)) = (&mut self.gate_proj, &mut self.up_proj) {
            self.gate_up_base = SharedBase::take(&mut [gate, up], device);
        }
        self
    }
}

impl DecoderLayer {
    pub fn forward(
        &self,
        h: Tensor<3>,
        context: &LayerContext,
        cache: Option<&mut Option<(Tensor<4>, Tensor<4>)>>,
        options: ForwardOptions,
    ) -> Tensor<3> {
        let fused = options.fused;
        let attn = self.self_attn.forward(self.input_layernorm.forward(h.clone(), fused), context, cache, options);
        match (&self.pre_feedforward_layernorm, &self.post_feedforward_layernorm) {
            (Some(pre), Some(post)) => {
                let h = h + self.post_attention_layernorm.forward(attn, fused);
                let mlp = self.mlp.forward(pre.forward(h.clone(), fused), options);
                h + post.forward(mlp, fused)
            }
            _ => {
                let h = h + attn;
                let mlp = self.mlp.forward(self.post_attention_layernorm.forward(h.clone(), fused), options);
                h + mlp
            }
        }
    }
}

impl CausalLm {
    pub fn new(embed_tokens: Embedding, layers: Vec<DecoderLayer>, norm: RmsNorm, lm_head: Option<Linear>, config: ModelConfig) -> Self {
        let (rope, local_rope) = (Rope::new(&config), Rope::local(&config));
        Self { embed_tokens, layers, norm, lm_head, head_blocks: None, score: None, config, rope, local_rope }
    }

    /// This model with its output projection in `blocks` (and no `lm_head`).
    pub fn with_head_blocks(self, blocks: RowBlocks) -> Self {
        Self { lm_head: None, head_blocks: Some(blocks), ..self }
    }

    /// This decoder as a classifier of `labels`, with `score` (stored `[hidden, num_labels]`, in
    /// f32: it is trained) in place of the language-model head. The config keeps the labels and
    /// the padding id the pooling rule skips (`pad_token_id`, when given), as transformers keeps
    /// them in `config.json`.
    pub fn with_score_head(mut self, score: Param<Tensor<2>>, labels: LabelSet, pad_token_id: Option<u32>) -> Self {
        self.config.labels = Some(labels);
        self.config.pad_token_id = pad_token_id.or(self.config.pad_token_id);
        Self { score: Some(Linear::dense(score, None)), lm_head: None, ..self }
    }

    /// [`Self::with_score_head`] with a new head, drawn as transformers initialises one: normal
    /// with the config's `initializer_range`.
    pub fn into_classifier(self, labels: LabelSet, pad_token_id: u32) -> Self {
        let std = self.config.initializer_range;
        let shape = [self.config.hidden_size, labels.len()];
        // Drawn on the host from the run's seed: the same head on every device.
        let weight = Tensor::from_data(crate::seed::normal(shape.into(), 0.0, std), &self.device());
        self.with_score_head(Param::from_tensor(weight), labels, Some(pad_token_id))
    }

    /// Lets the frozen projections of one input share one matmul: q, k and v, and gate and up, in
    /// every layer where they are frozen (see [`SharedBase`]). Call it after freezing and before
    /// attaching adapters; it changes no output.
    pub fn share_frozen_bases(mut self) -> Self {
        let device = self.device();
        self.layers = self
            .layers
            .into_iter()
            .map(|layer| DecoderLayer {
                self_attn: layer.self_attn.share_frozen_bases(&device),
                mlp: layer.mlp.share_frozen_bases(&device),
                ..layer
            })
            .collect();
        // The separate bases' memory goes back to the device instead of staying reserved.
        device.memory_cleanup();
        self
    }

    /// The number of classes of a classifier; `None` for a language model.
    pub fn num_labels(&self) -> Option<usize> {
        self.score.as_ref().map(|s| s.weight.dims()[1])
    }

    pub fn num_layers(&self) -> usize {
        self.layers.len()
    }

    pub fn device(&self) -> Device {
        self.embed_tokens.weight.device()
    }

    /// Hidden states after the final norm, `[batch, len, hidden]`, for tokens placed after the
    /// positions already in `cache` (or at position 0 without one).
    pub fn hidden_states(&self, input_ids: Tensor<2, Int>, cache: Option<&mut KvCache>, options: ForwardOptions) -> Tensor<3> {
        self.hidden_states_padded(input_ids, &[], cache, options)
    }

    /// [`Self::hidden_states`] of sequences left-padded by `left_padding[b]` columns each (empty:
    /// none): each sequence's states are those it has alone, as transformers gives them with an
    /// attention mask and positions counted from each sequence's first token. The states at
    /// padding columns mean nothing.
    pub fn hidden_states_padded(
        &self,
        input_ids: Tensor<2, Int>,
        left_padding: &[usize],
        mut cache: Option<&mut KvCache>,
        options: ForwardOptions,
    ) -> Tensor<3> {
        let [_, len] = input_ids.dims();
        let start = cache.as_ref().map(|c| c.len()).unwrap_or(0);
        let mut context = self.layer_context(start, len, &input_ids.device());
        if left_padding.iter().any(|&p| p > 0) {
            context.rope = self.rope.shifted_tables(start, len, left_padding, &input_ids.device());
            context.local_rope = self.local_rope.as_ref().map(|rope| rope.shifted_tables(start, len, left_padding, &input_ids.device()));
            context.padding = Some(kernels::padding_mask(left_padding, start + len, &input_ids.device()));
        }

        let mut h = self.embed(input_ids);
        for i in 0..self.layers.len() {
            let layer_cache = cache.as_deref_mut().map(|c| &mut c.layers[i]);
            h = self.forward_layer(i, h, &context, layer_cache, options);
        }
        self.norm.forward(h, options.fused)
    }

    /// The token embeddings, `[batch, len, hidden]`; Gemma's scaled by √hidden.
    pub fn embed(&self, input_ids: Tensor<2, Int>) -> Tensor<3> {
        let embedded = self.lookup(input_ids);
        if self.config.scale_embeddings {
            // √hidden in f32: transformers rounds it to the weights' dtype, f32 in the reference.
            embedded.mul_scalar((self.config.hidden_size as f32).sqrt())
        } else {
            embedded
        }
    }

    fn lookup(&self, input_ids: Tensor<2, Int>) -> Tensor<3> {
        let Some(table) = &self.embed_tokens.host else {
            return to_f32(burn::tensor::module::embedding(self.embed_tokens.weight.val(), input_ids));
        };
        let [batch, len] = input_ids.dims();
        let device = input_ids.device();
        let ids = input_ids.into_data().convert::<i64>().try_into_vec::<i64>().unwrap_or_default();
        Tensor::from_data(burn::tensor::TensorData::new(table.rows(&ids), [batch, len, table.cols()]), &device)
    }

    /// What every layer of a forward pass over `len` tokens from position `start` shares.
    pub fn layer_context(&self, start: usize, len: usize, device: &Device) -> LayerContext {
        LayerContext {
            rope: self.rope.tables(start, len, device),
            local_rope: self.local_rope.as_ref().map(|rope| rope.tables(start, len, device)),
            start,
            window: self.config.sliding_window,
            padding: None,
        }
    }

    /// Decoder layer `i`: `h + attn(norm(h))`, then `h + mlp(norm(h))`.
    pub fn forward_layer(
        &self,
        i: usize,
        h: Tensor<3>,
        context: &LayerContext,
        cache: Option<&mut Option<(Tensor<4>, Tensor<4>)>>,
        options: ForwardOptions,
    ) -> Tensor<3> {
        if let Some(seed) = options.dropout_seed {
            // The fused dropout draws from its own generator, Burn's (`--kernels generic`) from
            // the device's.
            kernels::seed_dropout(layer_seed(seed, i));
            h.device().seed(layer_seed(seed, i));
        }
        self.layers[i].forward(h, context, cache, options)
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
            let projections = [("q_proj", &a.q_proj), ("k_proj", &a.k_proj), ("v_proj", &a.v_proj), ("qkv_proj", &a.qkv_proj)];
            for (name, l) in projections.into_iter().filter_map(|(name, l)| Some((name, l.as_ref()?))).chain([("o_proj", &a.o_proj)]) {
                linear(&mut out, p(&format!("self_attn.{name}")), l);
            }
            for (name, norm) in [("q_norm", &a.q_norm), ("k_norm", &a.k_norm)] {
                if let Some(norm) = norm {
                    out.push((p(&format!("self_attn.{name}.weight")), ParamRef::Vector(&norm.weight)));
                }
            }
            out.push((p("post_attention_layernorm.weight"), ParamRef::Vector(&layer.post_attention_layernorm.weight)));
            for (name, norm) in [
                ("pre_feedforward_layernorm", &layer.pre_feedforward_layernorm),
                ("post_feedforward_layernorm", &layer.post_feedforward_layernorm),
            ] {
                if let Some(norm) = norm {
                    out.push((p(&format!("{name}.weight")), ParamRef::Vector(&norm.weight)));
                }
            }
            let m = &layer.mlp;
            let projections = [("gate_proj", &m.gate_proj), ("up_proj", &m.up_proj), ("gate_up_proj", &m.gate_up_proj)];
            for (name, l) in projections.into_iter().filter_map(|(name, l)| Some((name, l.as_ref()?))).chain([("down_proj", &m.down_proj)])
            {
                linear(&mut out, p(&format!("mlp.{name}")), l);
            }
        }
        out.push(("norm.weight".to_string(), ParamRef::Vector(&self.norm.weight)));
        if let Some(head) = &self.lm_head {
            linear(&mut out, "lm_head".to_string(), head);
        }
        if let Some(score) = &self.score {
            linear(&mut out, "score".to_string(), score);
        }
        out
    }

    /// Class logits `[batch, num_labels]` from the hidden states `[batch, len, hidden]` at
    /// `positions`, one flat index (`row * len + position`) per sequence. Panics on a model
    /// without a score head: callers check [`Self::num_labels`].
    pub fn class_logits(&self, hidden: Tensor<3>, positions: Tensor<1, Int>) -> Tensor<2> {
        let [batch, len, dim] = hidden.dims();
        let pooled = hidden.reshape([batch * len, dim]).select(0, positions);
        let score = self.score.as_ref().expect("class_logits on a model without a score head");
        pooled.matmul(to_f32(score.weight.val()))
    }

    /// The output projection, dense in the precision the weights are stored in (an f16 head is
    /// never copied to f32) or packed, tied to the embedding or not.
    pub fn head(&self) -> Head<'_> {
        let weight = match (&self.lm_head, &self.head_blocks, &self.embed_tokens.packed) {
            (Some(head), _, _) => match &head.packed {
                Some(packed) => HeadWeight::Packed(packed),
                None => HeadWeight::Dense(head.weight.val()),
            },
            (None, Some(blocks), _) => HeadWeight::Blocks(blocks.transposed()),
            (None, None, Some(packed)) => HeadWeight::Packed(packed),
            (None, None, None) => HeadWeight::Dense(self.embed_tokens.weight.val().transpose()),
        };
        Head { weight, softcap: self.config.final_logit_softcapping }
    }

    /// Logits for every position, `[batch, len, vocab]`. Training uses the chunked loss in
    /// `train::loss` instead, which never holds the whole `[tokens, vocab]` matrix.
    pub fn logits(&self, hidden: Tensor<3>) -> Tensor<3> {
        let [batch, len, dim] = hidden.dims();
        let logits = self.head().logits(hidden.reshape([batch * len, dim]), true);
        let vocab = logits.dims()[1];
        logits.reshape([batch, len, vocab])
    }
}

/// A seed per layer from one per forward pass (SplitMix64, so that neighbouring layers and passes
/// get unrelated streams).
fn layer_seed(seed: u64, layer: usize) -> u64 {
    let mut z = seed.wrapping_add((layer as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The Hugging Face checkpoint name of a parameter, from its Burn module path.
pub fn hf_name(path: &str) -> String {
    if path.starts_with("lm_head") || path.starts_with("score.") { path.to_string() } else { format!("model.{path}") }
}

/// The Burn module path of a checkpoint tensor; the inverse of [`hf_name`].
pub fn module_path(hf_name: &str) -> String {
    hf_name.strip_prefix("model.").unwrap_or(hf_name).to_string()
}

/// Whether the parameter at `path` is a linear weight, stored `[in, out]` here and `[out, in]`
/// in checkpoints.
pub fn is_transposed(path: &str) -> bool {
    path.ends_with("_proj.weight") || path == "lm_head.weight" || path == "score.weight"
}
