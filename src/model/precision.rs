//! The precision the weight matrices' matmuls run in: f32, or f16 with f32 activations.
//!
//! With f16 every matmul against a weight matrix casts its input to f16 and its output back to
//! f32, so norms, attention, the loss and the optimizer stay in f32. Where those weights live
//! depends on whether they train:
//! - frozen weights (under LoRA) are loaded in f16, which halves the memory of the frozen model;
//!   LoRA's factors stay f32 and multiply in f32;
//! - trainable weights (full and partial fine-tuning) stay f32 masters that AdamW updates; each
//!   forward casts them to f16 inside the autodiff graph, so their gradients reach the f32
//!   masters through the cast.
//!
//! Gradients flowing back through those matmuls are f16 too, which is why a run in f16 scales
//! its loss (`train::LossScale`). On software Vulkan the WGSL matmul reads f16 weights and
//! multiplies in f32 instead (`kernels::matmul`): half the memory all the same, at f32's speed,
//! which is no slower there than f16's.

use burn::tensor::{DType, Tensor};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    #[default]
    F32,
    F16,
}

impl std::str::FromStr for Precision {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "f32" | "fp32" => Ok(Self::F32),
            "f16" | "fp16" => Ok(Self::F16),
            other => Err(format!("unknown precision `{other}` (f32, f16)")),
        }
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::F32 => "f32",
            Self::F16 => "f16",
        })
    }
}

impl Precision {
    /// The dtype weight matrices (projections, embeddings, head) are stored in when loaded in
    /// this precision; vectors (norms, biases) stay f32.
    pub fn matrix_dtype(self) -> DType {
        match self {
            Self::F32 => DType::F32,
            Self::F16 => DType::F16,
        }
    }

    /// A weight as this precision's matmuls take it: in f16, an f32 weight is cast (inside the
    /// graph: its gradient still reaches the f32 value); a weight stored in f16 stays as it is.
    pub fn matmul_weight<const D: usize>(self, w: Tensor<D>) -> Tensor<D> {
        match self {
            Self::F16 if w.dtype() == DType::F32 => w.cast(DType::F16),
            _ => w,
        }
    }
}

/// `t` as f32 (a no-op when it already is).
pub fn to_f32<const D: usize>(t: Tensor<D>) -> Tensor<D> {
    if t.dtype() == DType::F32 { t } else { t.cast(DType::F32) }
}
