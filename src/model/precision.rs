//! Where the frozen weights live and their matmuls run: f32, or f16 with f32 activations.
//!
//! With f16, every weight matrix of the model is loaded in half precision (LoRA then attaches its
//! f32 factors), which halves the memory of the frozen model. A matmul against an f16 weight
//! casts its input to f16 and its output back to f32, so norms, attention, the loss and every
//! trainable factor stay in f32. Gradients flowing back through those matmuls are f16 too, which
//! is why a run in f16 scales its loss (`train::LossScale`).

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
    /// The dtype weight matrices (projections, embeddings, head) are stored in; vectors (norms,
    /// biases) stay f32.
    pub fn matrix_dtype(self) -> DType {
        match self {
            Self::F32 => DType::F32,
            Self::F16 => DType::F16,
        }
    }
}

/// `x · w` computed in `w`'s precision; the result is f32 like `x`.
pub fn weight_matmul<const D: usize>(x: Tensor<D>, w: Tensor<D>) -> Tensor<D> {
    let dtype = w.dtype();
    if dtype == x.dtype() { x.matmul(w) } else { x.cast(dtype).matmul(w).cast(DType::F32) }
}

/// `t` as f32 (a no-op when it already is).
pub fn to_f32<const D: usize>(t: Tensor<D>) -> Tensor<D> {
    if t.dtype() == DType::F32 { t } else { t.cast(DType::F32) }
}
