//! Llama-family causal language models: configuration, weights and the forward pass.

mod activation;
mod config;
mod linear;
mod llama;
mod load;
pub mod packed;
mod precision;
mod rope;
mod shared_base;
mod vocabulary;
pub mod weights;

pub use activation::Activation;
pub use config::{Architecture, LayerAttention, ModelConfig, RopeScaling};
pub use linear::{Linear, LoraForward};
pub use llama::{
    CausalLm, DecoderLayer, Embedding, ForwardOptions, Head, HeadWeight, KvCache, LayerContext, ParamRef, hf_name, is_transposed,
    module_path,
};
pub use load::{ModelFolder, ModelWeights, random_model, transpose};
pub use packed::{BaseQuant, PackedWeight};
pub use precision::Precision;
pub use shared_base::SharedBase;
pub use vocabulary::{HostTable, RowBlocks, exceeds_binding};
pub use weights::{HostTensor, WeightDtype, WeightFiles};
