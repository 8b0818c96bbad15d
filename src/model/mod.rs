//! Llama-family causal language models: configuration, weights and the forward pass.

mod config;
mod linear;
mod llama;
mod load;
mod rope;
pub mod weights;

pub use config::{Architecture, ModelConfig, RopeScaling};
pub use linear::{Linear, LoraForward};
pub use llama::{hf_name, is_transposed, module_path, CausalLm, DecoderLayer, ForwardOptions, KvCache, ParamRef};
pub use load::{random_model, transpose, ModelFolder};
pub use weights::{HostTensor, WeightDtype, WeightFiles};
