//! A linear layer that computes LoRA in factored form.
//!
//! Burn's `apply_lora` attaches an adapter (`a: [d_in, r]`, `b: [r, d_out]`, `scale`) to the
//! frozen weight. Reading `weight.val()` would materialise `W + scale·a·b` on every forward and
//! make backward produce a weight-sized gradient; `x·W + scale·(x·a)·b` does neither, which is
//! what this layer computes whenever an adapter is attached (see BENCHMARKS.md for the two
//! measured side by side).

use burn::module::{Module, Param};
use burn::tensor::{Distribution, Tensor};

use super::llama::ForwardOptions;
use crate::kernels;

#[derive(Module, Debug)]
pub struct Linear {
    /// `[d_in, d_out]`: the transpose of the Hugging Face layout, so that forward is `x·W`.
    pub weight: Param<Tensor<2>>,
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
        let mut y = match self.weight.adapter() {
            Some(adapter) if !lora.materialize => {
                let base = kernels::matmul(x.clone(), compute.matmul_weight(self.weight.base()), fused);
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
            _ => kernels::matmul(x, compute.matmul_weight(self.weight.val()), fused),
        };
        if let Some(bias) = &self.bias {
            y = y + bias.val().unsqueeze::<2>();
        }
        y.reshape([batch, len, self.d_out()])
    }
}
