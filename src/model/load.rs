//! Building a [`CausalLm`] from the weights of a Hugging Face model folder.

use std::path::{Path, PathBuf};

use burn::module::Param;
use burn::tensor::{DType, Device, Distribution, Tensor, TensorData};

use super::config::ModelConfig;
use super::linear::Linear;
use super::llama::{Attention, CausalLm, DecoderLayer, Embedding, GateUpProjections, Mlp, QkvProjections, RmsNorm};
use super::packed::{BaseQuant, HostPacked, PackedWeight};
use super::precision::Precision;
use super::vocabulary::{RowBlocks, exceeds_binding};
use super::weights::{HostTensor, WeightDtype, WeightFiles};
use crate::error::{Error, Result};
use crate::gguf::{GgmlType, GgufModel};
use crate::tokenizer::TextTokenizer;

/// A model opened for reading: a Hugging Face folder or a GGUF file, its config, and its
/// (memory-mapped) weights.
pub struct ModelFolder {
    pub path: PathBuf,
    pub config: ModelConfig,
    pub weights: ModelWeights,
}

/// Where a model's tensors are, read under transformers' names either way.
pub enum ModelWeights {
    /// The safetensors files of a Hugging Face folder.
    Safetensors(WeightFiles),
    /// A GGUF file (llama.cpp, LM Studio, Ollama), its tensors decoded to f32 as they are read.
    Gguf(GgufModel),
}

/// The fewest bytes a weight takes in any storage wgtune reads, with room to spare: 4-bit blocks
/// take 4.5 bits or more.
const MIN_BYTES_PER_WEIGHT: f64 = 0.25;

/// Refuses a configuration (`origin`: `config.json`, or the GGUF file whose metadata it is) that
/// describes far more weights than the files hold, before anything is sized from it: a damaged or
/// hostile configuration would otherwise ask for memory the model never had.
fn check_weights_fit(origin: &Path, config: &ModelConfig, stored_bytes: u64) -> Result<()> {
    let weights = config.num_parameters();
    if weights as f64 * MIN_BYTES_PER_WEIGHT > stored_bytes as f64 {
        return Err(Error::invalid_file(
            origin,
            format!(
                "the configuration describes {weights} weights (vocab_size {}, hidden_size {}, intermediate_size {}, \
                 num_hidden_layers {}), more than the weight files' {stored_bytes} bytes can hold at {MIN_BYTES_PER_WEIGHT} \
                 bytes a weight: it does not belong to these weights",
                config.vocab_size, config.hidden_size, config.intermediate_size, config.num_hidden_layers
            ),
        ));
    }
    Ok(())
}

impl ModelFolder {
    /// Opens a Hugging Face model folder, or a `.gguf` file.
    pub fn open(path: &Path) -> Result<Self> {
        if path.is_file() && is_gguf(path) {
            return Self::open_gguf(path);
        }
        if !path.is_dir() {
            return Err(Error::invalid_file(path, "not a folder (expected a Hugging Face model folder or a .gguf file)"));
        }
        let config_path = path.join("config.json");
        if !config_path.exists() {
            return Err(Error::invalid_file(path, "no config.json: not a Hugging Face model folder"));
        }
        let config = ModelConfig::from_file(&config_path)?;
        let files = WeightFiles::open_model_folder(path)?;
        check_weights_fit(&config_path, &config, files.stored_bytes())?;
        Ok(Self { path: path.to_path_buf(), config, weights: ModelWeights::Safetensors(files) })
    }

    fn open_gguf(path: &Path) -> Result<Self> {
        let gguf = GgufModel::open(path)?;
        let mut config = ModelConfig::from_json(&gguf.config_json()?.to_string(), path)?;
        check_weights_fit(path, &config, gguf.file.stored_bytes())?;
        config.rope_scaling = gguf.rope_scaling(&config)?;
        Ok(Self { path: path.to_path_buf(), config, weights: ModelWeights::Gguf(gguf) })
    }

    /// The model's tokenizer: the folder's `tokenizer.json`, or the one the GGUF file carries;
    /// checked against the embedding (see [`TextTokenizer::check_fits`]).
    pub fn tokenizer(&self) -> Result<TextTokenizer> {
        let eos = &self.config.eos_token_ids;
        let (tokenizer, origin) = match &self.weights {
            ModelWeights::Safetensors(_) => (TextTokenizer::from_folder(&self.path, eos)?, self.path.join("tokenizer.json")),
            ModelWeights::Gguf(gguf) => (TextTokenizer::from_gguf(&gguf.file, eos)?, self.path.clone()),
        };
        tokenizer.check_fits(&origin, self.config.vocab_size)?;
        Ok(tokenizer)
    }

    /// The dtype the weights are stored in (for a quantized GGUF, the dtype its export takes).
    pub fn dtype(&self) -> WeightDtype {
        match &self.weights {
            ModelWeights::Safetensors(files) => files.dominant_dtype().unwrap_or(WeightDtype::F32),
            ModelWeights::Gguf(gguf) => match gguf.dominant_type() {
                Some(GgmlType::F32) => WeightDtype::F32,
                Some(GgmlType::F16) => WeightDtype::F16,
                _ => WeightDtype::Bf16,
            },
        }
    }

    /// The packed frozen base that keeps the file's own precision: int4 for a GGUF stored in 4- or
    /// 5-bit blocks, int8 for 6- and 8-bit ones, dense for anything else. Training LoRA over a
    /// quantized model with a dense base would hold its weights in f32 for nothing.
    pub fn native_base_quant(&self) -> BaseQuant {
        match &self.weights {
            ModelWeights::Gguf(gguf) => match gguf.dominant_type() {
                Some(GgmlType::Q4_0 | GgmlType::Q4_1 | GgmlType::Q4K | GgmlType::Q5K) => BaseQuant::Int4,
                Some(GgmlType::Q6K | GgmlType::Q8_0) => BaseQuant::Int8,
                _ => BaseQuant::None,
            },
            ModelWeights::Safetensors(_) => BaseQuant::None,
        }
    }

    /// How the weights are stored, for people: `bfloat16`, or `Q4_1 (GGUF)`.
    pub fn storage(&self) -> String {
        match &self.weights {
            ModelWeights::Safetensors(_) => self.dtype().torch_name().to_string(),
            ModelWeights::Gguf(gguf) => format!("{} (GGUF)", gguf.dominant_type().map_or("?", GgmlType::name)),
        }
    }

    /// Loads every weight onto `device`, in f32.
    pub fn load(&self, device: &Device) -> Result<CausalLm> {
        self.load_in(device, Precision::F32, BaseQuant::None)
    }

    /// Loads every weight onto `device`, the matrices in `precision` (converted on the host, so
    /// the device never holds them in f32) and the vectors in f32. With a `base_quant`, the
    /// decoder layers' projections are packed in blocks instead (for LoRA, which freezes them).
    pub fn load_in(&self, device: &Device, precision: Precision, base_quant: BaseQuant) -> Result<CausalLm> {
        Loader::new(Source::Files(&self.weights), device, precision, base_quant).model(&self.config)
    }
}

/// Whether `path` is a GGUF file: by its magic, whatever its name.
fn is_gguf(path: &Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 4];
    std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut magic)).is_ok() && &magic == b"GGUF"
}

impl ModelWeights {
    pub fn contains(&self, name: &str) -> bool {
        match self {
            Self::Safetensors(files) => files.contains(name),
            Self::Gguf(gguf) => gguf.contains(name),
        }
    }

    /// Reads a tensor as f32 under its transformers name, checking its shape.
    pub fn read(&self, name: &str, expected: &[usize]) -> Result<HostTensor> {
        match self {
            Self::Safetensors(files) => files.read(name, expected),
            Self::Gguf(gguf) => gguf.read(name, expected),
        }
    }

    /// A matrix already in blocks whose numbers the base keeps (GGUF's Q8_0, Q4_K, Q4_0, Q4_1), as
    /// a base of `bits`-bit numbers; `None` when it must be quantized from its values.
    pub fn read_packed(&self, name: &str, expected: &[usize], bits: usize) -> Result<Option<HostPacked>> {
        match self {
            Self::Safetensors(_) => Ok(None),
            Self::Gguf(gguf) => gguf.read_packed(name, expected, bits),
        }
    }

    pub fn shape(&self, name: &str) -> Result<Vec<usize>> {
        match self {
            Self::Safetensors(files) => files.shape(name),
            Self::Gguf(gguf) => gguf.shape(name),
        }
    }

    /// Every tensor's transformers name.
    pub fn names(&self) -> Vec<String> {
        match self {
            Self::Safetensors(files) => files.names().map(str::to_string).collect(),
            Self::Gguf(gguf) => gguf.transformers_names().collect(),
        }
    }

    /// The safetensors files, for what mirrors them byte for byte (merged exports).
    pub fn safetensors(&self) -> Option<&WeightFiles> {
        match self {
            Self::Safetensors(files) => Some(files),
            Self::Gguf(_) => None,
        }
    }
}

/// A model of the given shape with random weights (normal, std 0.02; norms at one), built on the
/// device; for benchmarks of shapes whose weights are not at hand.
pub fn random_model(config: &ModelConfig, device: &Device, precision: Precision, base_quant: BaseQuant) -> CausalLm {
    Loader::new(Source::Random, device, precision, base_quant)
        .model(config)
        // Cannot fail: random weights are drawn in the shapes the same config asks for.
        .expect("random weights have the right shapes")
}

enum Source<'a> {
    Files(&'a ModelWeights),
    Random,
}

struct Loader<'a> {
    source: Source<'a>,
    device: &'a Device,
    /// The dtype weight matrices are stored in.
    matrices: DType,
    /// How the decoder layers' projections are stored (packed: not in `matrices`).
    base_quant: BaseQuant,
    /// The most bytes one storage binding holds on a wgpu device: frozen vocabulary tables past
    /// it stay on the host or go in blocks (see `vocabulary.rs`).
    binding: Option<u64>,
}

impl<'a> Loader<'a> {
    fn new(source: Source<'a>, device: &'a Device, precision: Precision, base_quant: BaseQuant) -> Self {
        let binding = if crate::kernels::is_wgpu(device) { crate::device::wgpu_storage_binding_limit() } else { None };
        Self { source, device, matrices: precision.matrix_dtype(), base_quant, binding }
    }

    fn model(&self, c: &ModelConfig) -> Result<CausalLm> {
        let has_head = match self.source {
            Source::Files(files) => files.contains("lm_head.weight"),
            Source::Random => false,
        };
        // The embedding is the output projection too (a classifier has none).
        let tied = c.tie_word_embeddings && !has_head && c.labels.is_none();
        let (embed_tokens, tied_head_blocks) = self.embedding(c, tied)?;
        let layers = (0..c.num_hidden_layers).map(|i| self.layer(c, i)).collect::<Result<Vec<_>>>()?;
        let norm = self.norm(c, "model.norm")?;
        if let Some(labels) = &c.labels {
            let model = CausalLm::new(embed_tokens, layers, norm, None, c.clone());
            return Ok(match self.source {
                Source::Files(files) => {
                    let t = transpose(&files.read("score.weight", &[labels.len(), c.hidden_size])?);
                    let score = Param::from_data(TensorData::new(t.values, [c.hidden_size, labels.len()]), self.device);
                    model.with_score_head(score, labels.clone(), c.pad_token_id)
                }
                Source::Random => model.into_classifier(labels.clone(), c.pad_token_id.unwrap_or(0)),
            });
        }
        // Packed with the base on a GPU, or dense (in blocks past one binding): the chunked loss
        // multiplies by it either way.
        let (vocab, hidden) = (c.vocab_size, c.hidden_size);
        let lm_head = if c.tie_word_embeddings && !has_head {
            None
        } else if self.packs_vocabulary() {
            Some(self.linear("lm_head", hidden, vocab, false)?)
        } else if exceeds_binding(vocab, hidden, self.matrices, self.binding) {
            let values = self.host_values("lm_head.weight", vocab, hidden)?;
            let blocks = self.row_blocks(&values, vocab, hidden);
            return Ok(CausalLm::new(embed_tokens, layers, norm, None, c.clone()).with_head_blocks(blocks));
        } else {
            Some(self.dense_linear("lm_head", hidden, vocab, false)?)
        };
        let model = CausalLm::new(embed_tokens, layers, norm, lm_head, c.clone());
        Ok(match tied_head_blocks {
            Some(blocks) => model.with_head_blocks(blocks),
            None => model,
        })
    }

    /// Whether a packed base packs the embedding and the output projection too: on a GPU, where
    /// they would otherwise take device memory. On the CPU the device is the host: the table
    /// looked up there and its packed twin as the head would both be in RAM, and the CPU's
    /// packed product dequantizes the whole head for every chunk of the loss.
    fn packs_vocabulary(&self) -> bool {
        self.base_quant.bits().is_some() && crate::kernels::is_wgpu(self.device)
    }

    /// The token embeddings: with a packed base on a GPU, in blocks looked up on the host (and,
    /// `tied` to the output, also on the device as the head); larger than one storage binding,
    /// looked up on the host too, with the head (when `tied`) in row blocks on the device.
    fn embedding(&self, c: &ModelConfig, tied: bool) -> Result<(Embedding, Option<RowBlocks>)> {
        let name = "model.embed_tokens.weight";
        let (rows, cols) = (c.vocab_size, c.hidden_size);
        if let Some(bits) = self.base_quant.bits().filter(|_| self.packs_vocabulary() && BaseQuant::can_pack(rows, cols)) {
            let host = self.packed_host(name, rows, cols, bits)?;
            return Ok((Embedding::packed(host, tied, self.device), None));
        }
        if !exceeds_binding(rows, cols, self.matrices, self.binding) {
            return Ok((Embedding::dense(self.matrix(name, rows, cols, false)?), None));
        }
        let values = self.host_values(name, rows, cols)?;
        let head = tied.then(|| self.row_blocks(&values, rows, cols));
        Ok((Embedding::on_host(values, rows, cols, self.device), head))
    }

    /// A `[rows, cols]` checkpoint matrix's values on the host, row-major f32.
    fn host_values(&self, name: &str, rows: usize, cols: usize) -> Result<Vec<f32>> {
        Ok(match self.source {
            Source::Files(files) => files.read(name, &[rows, cols])?.values,
            Source::Random => random_values(rows * cols, name),
        })
    }

    /// A frozen `[rows, cols]` matrix in row blocks that each fit one storage binding.
    fn row_blocks(&self, values: &[f32], rows: usize, cols: usize) -> RowBlocks {
        let limit = self.binding.unwrap_or(u64::MAX);
        RowBlocks::new(values, rows, cols, self.matrices, limit, self.device)
    }

    /// A `[rows, cols]` matrix in blocks of `bits`: a GGUF's own blocks where they fit, else
    /// quantized from the values.
    fn packed_host(&self, name: &str, rows: usize, cols: usize, bits: usize) -> Result<HostPacked> {
        if let Source::Files(files) = self.source
            && let Some(packed) = files.read_packed(name, &[rows, cols], bits)?
        {
            return Ok(packed);
        }
        Ok(HostPacked::quantize(&self.host_values(name, rows, cols)?, rows, cols, bits))
    }

    fn layer(&self, c: &ModelConfig, index: usize) -> Result<DecoderLayer> {
        let prefix = &format!("model.layers.{index}");
        let h = c.hidden_size;
        let q = c.num_attention_heads * c.head_dim;
        let kv = c.num_key_value_heads * c.head_dim;
        let attn = |name: &str| format!("{prefix}.self_attn.{name}");
        let mlp = |name: &str| format!("{prefix}.mlp.{name}");
        let sandwich = |name: &str| -> Result<Option<RmsNorm>> {
            if c.sandwich_norms { Ok(Some(self.norm(c, &format!("{prefix}.{name}"))?)) } else { Ok(None) }
        };
        Ok(DecoderLayer {
            input_layernorm: self.norm(c, &format!("{prefix}.input_layernorm"))?,
            self_attn: Attention::new(
                if c.fused_projections {
                    QkvProjections::Fused(self.linear(&attn("qkv_proj"), h, q + 2 * kv, c.qkv_bias)?)
                } else {
                    QkvProjections::Separate(
                        self.linear(&attn("q_proj"), h, q, c.qkv_bias)?,
                        self.linear(&attn("k_proj"), h, kv, c.qkv_bias)?,
                        self.linear(&attn("v_proj"), h, kv, c.qkv_bias)?,
                    )
                },
                self.linear(&attn("o_proj"), q, h, c.o_bias)?,
                if c.qk_norm { Some((self.head_norm(c, &attn("q_norm"))?, self.head_norm(c, &attn("k_norm"))?)) } else { None },
                c.layers[index],
                c,
            ),
            post_attention_layernorm: self.norm(c, &format!("{prefix}.post_attention_layernorm"))?,
            pre_feedforward_layernorm: sandwich("pre_feedforward_layernorm")?,
            post_feedforward_layernorm: sandwich("post_feedforward_layernorm")?,
            mlp: Mlp::new(
                if c.fused_projections {
                    GateUpProjections::Fused(self.linear(&mlp("gate_up_proj"), h, 2 * c.intermediate_size, c.mlp_bias)?)
                } else {
                    GateUpProjections::Separate(
                        self.linear(&mlp("gate_proj"), h, c.intermediate_size, c.mlp_bias)?,
                        self.linear(&mlp("up_proj"), h, c.intermediate_size, c.mlp_bias)?,
                    )
                },
                self.linear(&mlp("down_proj"), c.intermediate_size, h, c.mlp_bias)?,
                c,
            ),
        })
    }

    fn norm(&self, c: &ModelConfig, prefix: &str) -> Result<RmsNorm> {
        self.norm_of(c, prefix, c.hidden_size)
    }

    /// A norm over one attention head (the queries and keys of Qwen3 and Gemma 3).
    fn head_norm(&self, c: &ModelConfig, prefix: &str) -> Result<RmsNorm> {
        self.norm_of(c, prefix, c.head_dim)
    }

    /// A norm of `len`; a random model's is the identity (weight 1, or 0 for Gemma's `1 + weight`).
    fn norm_of(&self, c: &ModelConfig, prefix: &str, len: usize) -> Result<RmsNorm> {
        let identity = if c.norm_unit_offset { 0.0 } else { 1.0 };
        Ok(RmsNorm::new(self.vector(&format!("{prefix}.weight"), len, identity)?, c.rms_norm_eps, c.norm_unit_offset))
    }

    /// A decoder layer's projection: packed when the run packs its base, dense otherwise.
    fn linear(&self, prefix: &str, d_in: usize, d_out: usize, bias: bool) -> Result<Linear> {
        let Some(bits) = self.base_quant.bits().filter(|_| BaseQuant::can_pack(d_out, d_in)) else {
            return self.dense_linear(prefix, d_in, d_out, bias);
        };
        let bias = if bias { Some(self.vector(&format!("{prefix}.bias"), d_out, 0.0)?) } else { None };
        let host = self.packed_host(&format!("{prefix}.weight"), d_out, d_in, bits)?;
        Ok(Linear::packed(PackedWeight::to_device(&host, self.device), bias, self.device))
    }

    /// Reads `[out, in]` from the checkpoint and stores it transposed, `[in, out]`.
    fn dense_linear(&self, prefix: &str, d_in: usize, d_out: usize, bias: bool) -> Result<Linear> {
        let bias = if bias { Some(self.vector(&format!("{prefix}.bias"), d_out, 0.0)?) } else { None };
        Ok(Linear::dense(self.matrix(&format!("{prefix}.weight"), d_out, d_in, true)?, bias))
    }

    /// A vector of `len`; `fill` is its value in a random model.
    fn vector(&self, name: &str, len: usize, fill: f32) -> Result<Param<Tensor<1>>> {
        let values = match self.source {
            Source::Files(files) => files.read(name, &[len])?.values,
            Source::Random => vec![fill; len],
        };
        Ok(Param::from_data(TensorData::new(values, [len]), self.device))
    }

    /// A `[rows, cols]` checkpoint matrix, stored as `[cols, rows]` when `transposed`.
    fn matrix(&self, name: &str, rows: usize, cols: usize, transposed: bool) -> Result<Param<Tensor<2>>> {
        let shape = if transposed { [cols, rows] } else { [rows, cols] };
        let (device, dtype) = (self.device, self.matrices);
        match self.source {
            Source::Files(files) => {
                let t = files.read(name, &[rows, cols])?;
                let t = if transposed { transpose(&t) } else { t };
                let data = TensorData::new(t.values, shape);
                Ok(device.memory_persistent_allocations(data, |data| Param::from_tensor(Tensor::from_data(data, (device, dtype)))))
            }
            Source::Random => {
                let t = Tensor::random(shape, Distribution::Normal(0.0, 0.02), device);
                Ok(Param::from_tensor(if dtype == DType::F32 { t } else { t.cast(dtype) }))
            }
        }
    }
}

/// `count` values spread like a normal of std 0.02 (uniform in ±0.0346), the same for the same
/// `name`: a random model's packed weights, drawn on the host where they are packed.
fn random_values(count: usize, name: &str) -> Vec<f32> {
    use rand::{Rng, SeedableRng};
    let seed = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3));
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let bound = 0.02 * 3f32.sqrt();
    (0..count).map(|_| rng.random_range(-bound..bound)).collect()
}

/// Transposes a row-major matrix.
pub fn transpose(t: &HostTensor) -> HostTensor {
    let (rows, cols) = (t.shape[0], t.shape[1]);
    let mut values = vec![0.0f32; rows * cols];
    for r in 0..rows {
        for c in 0..cols {
            values[c * rows + r] = t.values[r * cols + c];
        }
    }
    HostTensor { shape: vec![cols, rows], values }
}
