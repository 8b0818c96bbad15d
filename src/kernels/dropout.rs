//! Dropout as one pass on every backend, its mask a hash of each element's index and a seed (a
//! WGSL kernel on wgpu, one pass on every core on the CPU). Burn's `random_like(Bernoulli)` draws
//! the mask one element at a time from one generator on one core (on the CPU LoRA's default
//! dropout of 0.05 took the step from 342 to 191 tokens/s: BENCHMARKS.md), and the product with
//! it keeps the mask for the backward pass, an input-sized tensor per adapter. Here the backward
//! pass hashes the same indices with the same seed, so nothing but the seed is kept.
//!
//! Each call's seed comes from this thread's dropout generator ([`seed_dropout`], which the model
//! reseeds per step and layer: see `ForwardOptions::dropout_seed`), uploaded as a two-number
//! tensor: the same masks again after a resume or in a recomputed layer, the same on every
//! backend, and untouched by whatever else draws random numbers from the device.

use std::cell::Cell;

use burn::backend::Dispatch;
use burn::backend::TensorMetadata;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn::backend::tensor::FloatTensor;
use burn::tensor::{DType, Device, Distribution, Tensor, TensorData};

use super::extension::FusedKernels;
use crate::seed::SplitMix64;

thread_local! {
    /// This thread's generator of dropout seeds.
    static DROPOUT_SEEDS: Cell<SplitMix64> = const { Cell::new(SplitMix64::new(0x5EED_D50F_0A11_C0DE)) };
}

/// Seeds this thread's dropout masks: those drawn after it are a function of `seed` alone.
pub fn seed_dropout(seed: u64) {
    DROPOUT_SEEDS.set(SplitMix64::new(seed));
}

/// The next dropout seed of this thread, as the two-number tensor the fused operation takes: two
/// 23-bit words in the mantissas of numbers in `[1, 2)` (finite, so no copy can alter their bits).
fn next_seed(device: &Device) -> Tensor<1> {
    let mut seeds = DROPOUT_SEEDS.get();
    let z = seeds.next_u64();
    DROPOUT_SEEDS.set(seeds);
    let word = |bits: u64| f32::from_bits(0x3F80_0000 | (bits as u32 & 0x007F_FFFF));
    Tensor::from_data(TensorData::new(vec![word(z), word(z >> 32)], [2]), device)
}

/// `x` with each element zeroed with probability `probability` and the rest scaled by
/// `1 / (1 − probability)`; `fused` picks the fused operation (off: Burn's random mask).
pub fn dropout<const D: usize>(x: Tensor<D>, probability: f64, fused: bool) -> Tensor<D> {
    if probability <= 0.0 {
        return x;
    }
    let device = x.device();
    let keep = 1.0 - probability;
    if !super::fused_on(fused, &device) || x.dtype() != DType::F32 || !(super::is_cpu(&device) || super::is_wgpu(&device)) {
        let mask = x.random_like(Distribution::Bernoulli(keep));
        return x * mask / keep;
    }
    let seed = next_seed(&device);
    let shape = x.shape();
    let n = shape.num_elements();
    let output = Dispatch::fused_dropout(x.reshape([n]).into_dispatch(), seed.into_dispatch(), keep as f32);
    Tensor::<1>::from_dispatch(output).reshape(shape)
}

/// `dropout(x)·a` for `x` `[m, k]` and `a` `[k, n]`. On wgpu one operation whose backward pass
/// keeps `x` and the seed and drops `x` out again, rather than keeping the dropped-out copy: LoRA's
/// adapters of one input would keep one copy each, some 4 GiB at 2,048 tokens of an 8B model,
/// where a GPU's memory is the limit. On the CPU, where it rarely is, the copy is kept: the
/// recomputation cost 5 % of the step there (BENCHMARKS.md, "The CPU ahead of PyTorch").
pub fn dropout_matmul(x: Tensor<2>, probability: f64, a: Tensor<2>, fused: bool) -> Tensor<2> {
    let recompute =
        super::fused_on(fused, &x.device()) && super::is_wgpu(&x.device()) && x.dtype() == DType::F32 && a.dtype() == DType::F32;
    if probability <= 0.0 || !recompute {
        return super::matmul(dropout(x, probability, fused), a, fused);
    }
    let seed = next_seed(&x.device());
    let keep = (1.0 - probability) as f32;
    Tensor::from_dispatch(Dispatch::fused_dropout_matmul(x.into_dispatch(), seed.into_dispatch(), a.into_dispatch(), keep))
}

/// `dropout(x)` of a tensor of any shape through the flat [`FusedKernels::fused_dropout`].
pub(super) fn dropout_any_shape<B: FusedKernels>(x: FloatTensor<B>, seed: FloatTensor<B>, keep: f32) -> FloatTensor<B> {
    let shape = x.shape();
    let flat = B::float_reshape(x, [shape.num_elements()].into());
    B::float_reshape(B::fused_dropout(flat, seed, keep), shape)
}

/// The gradients of `dropout(x)·a` for `x` and `a` given the output's, with the backend's
/// `product`: `x` dropped out again for `a`'s, the same mask on `x`'s. Both backends'
/// [`FusedKernels::fused_dropout_matmul_backward`].
pub(super) fn dropout_matmul_grads<B: FusedKernels>(
    x: FloatTensor<B>,
    seed: FloatTensor<B>,
    a: FloatTensor<B>,
    grad: FloatTensor<B>,
    keep: f32,
    product: impl Fn(FloatTensor<B>, FloatTensor<B>) -> FloatTensor<B>,
) -> (FloatTensor<B>, FloatTensor<B>) {
    let dropped = dropout_any_shape::<B>(x, seed.clone(), keep);
    let grad_a = product(B::float_transpose(dropped), grad.clone());
    let grad_x = dropout_any_shape::<B>(product(grad, B::float_transpose(a)), seed, keep);
    (grad_x, grad_a)
}

/// The backward pass of [`dropout_matmul`]: the backend's backward operation, from `x`, `a` and
/// the seed.
#[derive(Debug)]
pub(super) struct DropoutMatmulBackward;

impl<B: FusedKernels> Backward<B, 2> for DropoutMatmulBackward {
    /// `x`, the seed, `a` and the share kept.
    type State = (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>, f32);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let [x_node, a_node] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (x, seed, a, keep) = ops.state;
        let (grad_x, grad_a) = B::fused_dropout_matmul_backward(x, seed, a, grad, keep);
        for (node, grad) in [(x_node, grad_x), (a_node, grad_a)] {
            if let Some(node) = node {
                grads.register::<B>(node.id, grad);
            }
        }
    }
}

/// The threshold below which an element's hash (24 bits) keeps it, and the factor it is kept by.
pub(super) fn keep_threshold(keep: f32) -> (u32, f32) {
    (((keep as f64) * (1u64 << 24) as f64).round() as u32, 1.0 / keep)
}

/// The backward pass of [`dropout`]: the same mask, from the same seed, on the gradient.
#[derive(Debug)]
pub(super) struct DropoutBackward;

impl<B: FusedKernels> Backward<B, 1> for DropoutBackward {
    /// The seed and the share kept.
    type State = (FloatTensor<B>, f32);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let [x_node] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (seed, keep) = ops.state;
        if let Some(node) = x_node {
            grads.register::<B>(node.id, B::fused_dropout(grad, seed, keep));
        }
    }
}

#[cfg(test)]
mod tests {
    use burn::backend::Dispatch;
    use burn::tensor::{Device, Distribution, Tensor};

    use crate::kernels::{FusedKernels, assert_close};

    /// The product that drops its input out again in the backward pass against the dropout and the
    /// product as two operations with the same seed (which keep the dropped-out copy): output and
    /// both gradients, on the CPU (the wgpu form runs in the LoRA-update test).
    #[test]
    fn dropout_matmul_recomputes_what_the_two_operations_keep() {
        let device = Device::flex().autodiff();
        let random = |shape: [usize; 2]| Tensor::<2>::random(shape, Distribution::Normal(0.0, 1.0), &device);
        let (x, a, weights) = (random([37, 24]).require_grad(), random([24, 5]).require_grad(), random([37, 5]));
        let seed = Tensor::<1>::random([2], Distribution::Default, &device);
        let keep = 0.7;
        let run = |fused: bool| {
            let output = if fused {
                Tensor::<2>::from_dispatch(Dispatch::fused_dropout_matmul(
                    x.clone().into_dispatch(),
                    seed.clone().into_dispatch(),
                    a.clone().into_dispatch(),
                    keep,
                ))
            } else {
                let flat = x.clone().reshape([37 * 24]).into_dispatch();
                let dropped =
                    Tensor::<1>::from_dispatch(Dispatch::fused_dropout(flat, seed.clone().into_dispatch(), keep)).reshape([37, 24]);
                dropped.matmul(a.clone())
            };
            let grads = (output.clone() * weights.clone()).sum().backward();
            (output.inner(), x.grad(&grads).expect("a gradient for x"), a.grad(&grads).expect("a gradient for a"))
        };
        let ((output, grad_x, grad_a), (reference, reference_x, reference_a)) = (run(true), run(false));
        assert_close("output", output, reference);
        assert_close("grad x", grad_x, reference_x);
        assert_close("grad a", grad_a, reference_a);
    }
}
