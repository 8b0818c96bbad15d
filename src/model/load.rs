//! Building a [`CausalLm`] from the weights of a Hugging Face model folder.

use std::path::{Path, PathBuf};

use burn::module::Param;
use burn::tensor::{DType, Device, Distribution, Tensor, TensorData};

use super::config::ModelConfig;
use super::linear::Linear;
use super::llama::{Attention, CausalLm, DecoderLayer, Embedding, Mlp, RmsNorm};
use super::precision::Precision;
use super::weights::{HostTensor, WeightDtype, WeightFiles};
use crate::error::{Error, Result};

/// A model folder opened for reading: its config and its (memory-mapped) weights.
pub struct ModelFolder {
    pub path: PathBuf,
    pub config: ModelConfig,
    pub weights: WeightFiles,
}

impl ModelFolder {
    pub fn open(path: &Path) -> Result<Self> {
        if !path.is_dir() {
            return Err(Error::invalid_file(path, "not a folder (expected a Hugging Face model folder)"));
        }
        let config_path = path.join("config.json");
        if !config_path.exists() {
            return Err(Error::invalid_file(path, "no config.json: not a Hugging Face model folder"));
        }
        let config = ModelConfig::from_file(&config_path)?;
        let weights = WeightFiles::open_model_folder(path)?;
        Ok(Self { path: path.to_path_buf(), config, weights })
    }

    /// The dtype the weights are stored in.
    pub fn dtype(&self) -> WeightDtype {
        self.weights.dominant_dtype().unwrap_or(WeightDtype::F32)
    }

    /// Loads every weight onto `device`, in f32.
    pub fn load(&self, device: &Device) -> Result<CausalLm> {
        self.load_in(device, Precision::F32)
    }

    /// Loads every weight onto `device`, the matrices in `precision` (converted on the host, so
    /// the device never holds them in f32) and the vectors in f32.
    pub fn load_in(&self, device: &Device, precision: Precision) -> Result<CausalLm> {
        Loader { source: Source::Files(&self.weights), device, matrices: precision.matrix_dtype() }.model(&self.config)
    }
}

/// A model of the given shape with random weights (normal, std 0.02; norms at one), built on the
/// device; for benchmarks of shapes whose weights are not at hand.
pub fn random_model(config: &ModelConfig, device: &Device, precision: Precision) -> CausalLm {
    Loader { source: Source::Random, device, matrices: precision.matrix_dtype() }
        .model(config)
        .expect("random weights have the right shapes")
}

enum Source<'a> {
    Files(&'a WeightFiles),
    Random,
}

struct Loader<'a> {
    source: Source<'a>,
    device: &'a Device,
    /// The dtype weight matrices are stored in.
    matrices: DType,
}

impl Loader<'_> {
    fn model(&self, c: &ModelConfig) -> Result<CausalLm> {
        let embed_tokens = Embedding { weight: self.matrix("model.embed_tokens.weight", c.vocab_size, c.hidden_size, false)? };
        let layers = (0..c.num_hidden_layers).map(|i| self.layer(c, &format!("model.layers.{i}"))).collect::<Result<Vec<_>>>()?;
        let norm = self.norm(c, "model.norm")?;
        let has_head = match self.source {
            Source::Files(files) => files.contains("lm_head.weight"),
            Source::Random => false,
        };
        let lm_head =
            if c.tie_word_embeddings && !has_head { None } else { Some(self.linear("lm_head", c.hidden_size, c.vocab_size, false)?) };
        Ok(CausalLm::new(embed_tokens, layers, norm, lm_head, c.clone()))
    }

    fn layer(&self, c: &ModelConfig, prefix: &str) -> Result<DecoderLayer> {
        let h = c.hidden_size;
        let q = c.num_attention_heads * c.head_dim;
        let kv = c.num_key_value_heads * c.head_dim;
        let attn = |name: &str| format!("{prefix}.self_attn.{name}");
        let mlp = |name: &str| format!("{prefix}.mlp.{name}");
        Ok(DecoderLayer {
            input_layernorm: self.norm(c, &format!("{prefix}.input_layernorm"))?,
            self_attn: Attention::new(
                self.linear(&attn("q_proj"), h, q, c.qkv_bias)?,
                self.linear(&attn("k_proj"), h, kv, c.qkv_bias)?,
                self.linear(&attn("v_proj"), h, kv, c.qkv_bias)?,
                self.linear(&attn("o_proj"), q, h, c.o_bias)?,
                c,
            ),
            post_attention_layernorm: self.norm(c, &format!("{prefix}.post_attention_layernorm"))?,
            mlp: Mlp {
                gate_proj: self.linear(&mlp("gate_proj"), h, c.intermediate_size, c.mlp_bias)?,
                up_proj: self.linear(&mlp("up_proj"), h, c.intermediate_size, c.mlp_bias)?,
                down_proj: self.linear(&mlp("down_proj"), c.intermediate_size, h, c.mlp_bias)?,
            },
        })
    }

    fn norm(&self, c: &ModelConfig, prefix: &str) -> Result<RmsNorm> {
        Ok(RmsNorm::new(self.vector(&format!("{prefix}.weight"), c.hidden_size, 1.0)?, c.rms_norm_eps))
    }

    /// Reads `[out, in]` from the checkpoint and stores it transposed, `[in, out]`.
    fn linear(&self, prefix: &str, d_in: usize, d_out: usize, bias: bool) -> Result<Linear> {
        let bias = if bias { Some(self.vector(&format!("{prefix}.bias"), d_out, 0.0)?) } else { None };
        Ok(Linear { weight: self.matrix(&format!("{prefix}.weight"), d_out, d_in, true)?, bias })
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
