//! A linear layer that computes LoRA in factored form.
//!
//! Burn's `apply_lora` attaches an adapter (`a: [d_in, r]`, `b: [r, d_out]`, `scale`) to the
//! frozen weight. Reading `weight.val()` would materialise `W + scale·a·b` on every forward and
//! make backward produce a weight-sized gradient; `x·W + scale·(x·a)·b` does neither, which is
//! what this layer computes whenever an adapter is attached (see BENCHMARKS.md for the two
//! measured side by side).
//!
//! A frozen base may be packed in blocks of int8 or 4-bit numbers (`--base-quant`, see
//! [`packed`](super::packed)): the product against it then runs through the dequantizing kernels,
//! and `weight` keeps only its shape and the adapter.

use burn::module::{Module, Param};
use burn::tensor::{Distribution, Tensor};

use super::llama::ForwardOptions;
use super::packed::PackedWeight;
use crate::kernels;

#[derive(Module, Debug)]
pub struct Linear {
    /// `[d_in, d_out]`: the transpose of the Hugging Face layout, so that forward is `x·W`. With a
    /// packed base it holds no values of its own (a zero-strided view of one zero, which takes no
    /// memory): it gives the adapter its shape and carries it.
    pub weight: Param<Tensor<2>>,
    /// The frozen base in blocks (`[d_out, d_in]`, the checkpoint's orientation), when packed.
    pub packed: Option<PackedWeight>,
    pub bias: Option<Param<Tensor<1>>>,
}

/// How LoRA behaves in one forward pass.
#[derive(Clone, Copy, Debug, Default)]
pub struct LoraForward {
    /// Probability of zeroing an input of the LoRA branch (training only).
    pub dropout: f64,
    /// Materialise `W + scale·a·b` instead of the factored form; kept to measure the difference.
    pub materialize: bool,
}

impl Linear {
    pub fn dense(weight: Param<Tensor<2>>, bias: Option<Param<Tensor<1>>>) -> Self {
        Self { weight, packed: None, bias }
    }

    /// A layer over a packed frozen base; `weight` becomes a placeholder of its shape.
    pub fn packed(packed: PackedWeight, bias: Option<Param<Tensor<1>>>, device: &burn::tensor::Device) -> Self {
        let shape = [packed.layout.cols, packed.layout.rows];
        Self { weight: super::packed::placeholder(shape, device), packed: Some(packed), bias }
    }

    pub fn d_in(&self) -> usize {
        self.weight.shape().dims::<2>()[0]
    }

    pub fn d_out(&self) -> usize {
        self.weight.shape().dims::<2>()[1]
    }

    /// `x·W (+ s·(x·a)·b) (+ bias)`, the matmul against `W` in the options' precision.
    pub fn forward(&self, x: Tensor<3>, options: ForwardOptions) -> Tensor<3> {
        let ForwardOptions { lora, fused, compute, .. } = options;
        let [batch, len, d_in] = x.dims();
        let x = x.reshape([batch * len, d_in]);
        let base = |x: Tensor<2>| match &self.packed {
            Some(packed) => kernels::packed_matmul(x, packed),
            None => kernels::matmul(x, compute.matmul_weight(self.weight.base()), fused),
        };
        let mut y = match self.weight.adapter() {
            // A packed base is never materialised: that is the point of packing it.
            Some(adapter) if !lora.materialize || self.packed.is_some() => {
                let base = base(x.clone());
                let x = if lora.dropout > 0.0 {
                    let keep = 1.0 - lora.dropout;
                    let mask = x.random_like(Distribution::Bernoulli(keep));
                    x * mask / keep
                } else {
                    x
                };
                let update = kernels::matmul(kernels::matmul(x, adapter.a.val(), fused), adapter.b.val(), fused);
                base + update.mul_scalar(adapter.scale)
            }
            _ if self.packed.is_some() => base(x),
            _ => kernels::matmul(x, compute.matmul_weight(self.weight.val()), fused),
        };
        if let Some(bias) = &self.bias {
            y = y + bias.val().unsqueeze::<2>();
        }
        y.reshape([batch, len, self.d_out()])
    }
}
