//! The gated activation of the MLP, `act(gate) · up`.

use burn::tensor::Tensor;

use crate::kernels;

/// The activation of the MLP's gate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// SwiGLU: `silu(gate) · up`.
    Silu,
    /// GeGLU with the tanh approximation of GELU (`gelu_pytorch_tanh`, Gemma).
    GeluTanh,
}

impl Activation {
    /// `act(gate) · up`; `fused` picks the fused SwiGLU (GeGLU has none and takes tensor
    /// operations).
    pub fn gated<const D: usize>(self, gate: Tensor<D>, up: Tensor<D>, fused: bool) -> Tensor<D> {
        match self {
            Self::Silu => kernels::swiglu(gate, up, fused),
            Self::GeluTanh => gelu_tanh(gate) * up,
        }
    }

    /// Whether the fused kernels cover this activation.
    pub fn is_fused(self) -> bool {
        self == Self::Silu
    }
}

/// `x/2 · (1 + tanh(√(2/π) · (x + 0.044715 x³)))`, as PyTorch's `gelu(approximate="tanh")`. The
/// cube is `x·x·x`: `powf` of a negative base is undefined in WGSL.
fn gelu_tanh<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    let sqrt_2_over_pi = (2.0 / std::f64::consts::PI).sqrt();
    let cube = x.clone() * x.clone() * x.clone();
    let inner = (x.clone() + cube.mul_scalar(0.044715)).mul_scalar(sqrt_2_over_pi);
    x.mul_scalar(0.5) * (inner.tanh().add_scalar(1.0))
}
