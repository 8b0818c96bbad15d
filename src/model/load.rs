//! Building a [`CausalLm`] from the weights of a Hugging Face model folder.

use std::path::{Path, PathBuf};

use burn::module::Param;
use burn::tensor::{Device, Tensor, TensorData};

use super::config::ModelConfig;
use super::linear::Linear;
use super::llama::{Attention, CausalLm, DecoderLayer, Embedding, Mlp, RmsNorm};
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
        Ok(Self {
            path: path.to_path_buf(),
            config,
            weights,
        })
    }

    /// The dtype the weights are stored in.
    pub fn dtype(&self) -> WeightDtype {
        self.weights.dominant_dtype().unwrap_or(WeightDtype::F32)
    }

    /// Loads every weight onto `device`, in f32.
    pub fn load(&self, device: &Device) -> Result<CausalLm> {
        Loader { files: &self.weights, device }.model(&self.config)
    }
}

struct Loader<'a> {
    files: &'a WeightFiles,
    device: &'a Device,
}

impl Loader<'_> {
    fn model(&self, c: &ModelConfig) -> Result<CausalLm> {
        let embed_tokens = Embedding {
            weight: self.param2(self.files.read("model.embed_tokens.weight", &[c.vocab_size, c.hidden_size])?),
        };
        let layers = (0..c.num_hidden_layers)
            .map(|i| self.layer(c, &format!("model.layers.{i}")))
            .collect::<Result<Vec<_>>>()?;
        let norm = self.norm(c, "model.norm")?;
        let lm_head = if c.tie_word_embeddings && !self.files.contains("lm_head.weight") {
            None
        } else {
            Some(self.linear("lm_head", c.hidden_size, c.vocab_size, false)?)
        };
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
        let weight = self.files.read(&format!("{prefix}.weight"), &[c.hidden_size])?;
        Ok(RmsNorm::new(self.param1(weight), c.rms_norm_eps))
    }

    /// Reads `[out, in]` from the checkpoint and stores it transposed, `[in, out]`.
    fn linear(&self, prefix: &str, d_in: usize, d_out: usize, bias: bool) -> Result<Linear> {
        let weight = self.files.read(&format!("{prefix}.weight"), &[d_out, d_in])?;
        let bias = if bias {
            Some(self.param1(self.files.read(&format!("{prefix}.bias"), &[d_out])?))
        } else {
            None
        };
        Ok(Linear {
            weight: self.param2(transpose(&weight)),
            bias,
        })
    }

    fn param1(&self, t: HostTensor) -> Param<Tensor<1>> {
        Param::from_data(TensorData::new(t.values, [t.shape[0]]), self.device)
    }

    fn param2(&self, t: HostTensor) -> Param<Tensor<2>> {
        Param::from_data(TensorData::new(t.values, [t.shape[0], t.shape[1]]), self.device)
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
    HostTensor {
        shape: vec![cols, rows],
        values,
    }
}
