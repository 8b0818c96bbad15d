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
//! and `weight` keeps only its shape and the adapter. So it does when the base is shared with the
//! other projections of the same input (see [`shared_base`](super::shared_base)): the owner
//! multiplies by the shared base and hands the layers their parts with [`outputs_from_base`].

use burn::module::{Module, Param};
use burn::tensor::Tensor;

use super::llama::ForwardOptions;
use super::packed::PackedWeight;
use crate::kernels::{self, LoraFactors};

#[derive(Module, Debug)]
pub struct Linear {
    /// `[d_in, d_out]`: the transpose of the Hugging Face layout, so that forward is `x·W`. With a
    /// packed base it holds no values of its own (a zero-strided view of one zero, which takes no
    /// memory): it gives the adapter its shape and carries it.
    pub weight: Param<Tensor<2>>,
    /// The frozen base in blocks (`[d_out, d_in]`, the checkpoint's orientation), when packed.
    pub packed: Option<PackedWeight>,
    pub bias: Option<Param<Tensor<1>>>,
    /// The frozen base lives in the owner's [`SharedBase`](super::shared_base::SharedBase).
    #[module(skip)]
    pub shares_base: bool,
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
        Self { weight, packed: None, bias, shares_base: false }
    }

    /// A layer over a packed frozen base; `weight` becomes a placeholder of its shape.
    pub fn packed(packed: PackedWeight, bias: Option<Param<Tensor<1>>>, device: &burn::tensor::Device) -> Self {
        let shape = [packed.layout.cols, packed.layout.rows];
        Self { weight: super::packed::placeholder(shape, device), packed: Some(packed), bias, shares_base: false }
    }

    pub fn d_in(&self) -> usize {
        self.weight.shape().dims::<2>()[0]
    }

    pub fn d_out(&self) -> usize {
        self.weight.shape().dims::<2>()[1]
    }

    /// `x·W (+ s·(x·a)·b) (+ bias)`, the matmul against `W` in the options' precision.
    pub fn forward(&self, x: Tensor<3>, options: ForwardOptions) -> Tensor<3> {
        assert!(!self.shares_base, "a projection that shares its base runs through its SharedBase");
        let ForwardOptions { lora, fused, compute, .. } = options;
        let [batch, len, d_in] = x.dims();
        let x = x.reshape([batch * len, d_in]);
        let y = match (self.weight.adapter(), &self.packed) {
            // Materialised: `x·(W + s·a·b)`. A packed base never is: that is the point of packing it.
            (Some(_), None) if lora.materialize => self.add_bias(kernels::matmul(x, compute.matmul_weight(self.weight.val()), fused)),
            (_, packed) => {
                let base = frozen_product(x.clone(), || self.weight.base(), packed.as_ref(), options);
                let [y] = outputs_from_base(x, base, [self], options);
                y
            }
        };
        y.reshape([batch, len, self.d_out()])
    }

    /// The adapter as the forward pass applies it, when one is attached.
    fn lora_factors(&self) -> Option<LoraFactors> {
        self.weight.adapter().map(|adapter| LoraFactors { a: adapter.a.val(), b: adapter.b.val(), scale: adapter.scale })
    }

    fn add_bias(&self, y: Tensor<2>) -> Tensor<2> {
        match &self.bias {
            Some(bias) => y + bias.val().unsqueeze::<2>(),
            None => y,
        }
    }
}

/// The outputs of `linears`, projections of one input `x` `[rows, d_in]`, given their frozen base
/// products `x·W` side by side, `base` `[rows, Σ d_out]` (a shared base's, or a layer's own): each
/// adds its adapter's update in factored form, its input dropped out, and its bias. A shared base,
/// like a packed one, is never materialised.
pub(super) fn outputs_from_base<const N: usize>(
    x: Tensor<2>,
    base: Tensor<2>,
    linears: [&Linear; N],
    options: ForwardOptions,
) -> [Tensor<2>; N] {
    let projections: Vec<(usize, Option<LoraFactors>)> = linears.iter().map(|l| (l.d_out(), l.lora_factors())).collect();
    let mut outputs = kernels::add_lora_updates(x, base, &projections, options.lora.dropout, options.fused).into_iter();
    linears.map(|linear| linear.add_bias(outputs.next().expect("one output per projection")))
}

/// `x·W` against a frozen base: `packed` when it is, else the `dense` one in the options'
/// precision. A layer's own base and a shared one multiply alike.
pub(super) fn frozen_product(
    x: Tensor<2>,
    dense: impl FnOnce() -> Tensor<2>,
    packed: Option<&PackedWeight>,
    options: ForwardOptions,
) -> Tensor<2> {
    match packed {
        Some(packed) => kernels::packed_matmul(x, packed),
        None => kernels::matmul(x, options.compute.matmul_weight(dense()), options.fused),
    }
}
