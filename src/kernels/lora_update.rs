//! LoRA's low-rank updates added to the frozen base products of the projections of one input:
//! `y_j = base_j + scale·(drop(x)·a_j)·b_j` for each projection `j`, their base products side by
//! side in one `[rows, Σ d_out]` tensor (one shared base, or a layer's own).
//!
//! Applied one projection at a time in tensor operations, each update is a product `x·a_j`, a
//! scaling, a product `·b_j` into fresh memory and an addition over the projection's whole output;
//! the backward pass adds each projection's input gradient `grad_down_j·a_jᵀ`, a full-width
//! product, into the input's gradient. On the CPU the update is one operation instead: the
//! adapters' `a`s side by side multiply `x` once (with dropout, one product each), and each block's
//! `scale·down_j·b_j` is accumulated by `gemm` into the base product's own memory; its backward
//! pass writes every block's rank-wide gradient into one tensor, so the input's gradient takes one
//! product for all the adapters of that input. That is a pass over each projection's output
//! fewer forward, and per input one full-width product and addition backward instead of one per
//! projection (BENCHMARKS.md, "The CPU ahead of PyTorch").
//!
//! Elsewhere the updates run one projection at a time, as they always did. On wgpu, joining the
//! adapters' factors costs a copy each and per-element kernels cost more on lavapipe than the
//! launches they save (measured in the same section); keeping each input's adapters side by side in
//! one tensor would be the way there.

use burn::backend::Dispatch;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn::backend::tensor::FloatTensor;
use burn::tensor::{DType, Tensor};

use super::extension::FusedKernels;

/// A LoRA adapter as a forward pass applies it: `x·a·b·scale`, `a` `[d_in, r]`, `b` `[r, d_out]`.
#[derive(Clone, Debug)]
pub struct LoraFactors {
    pub a: Tensor<2>,
    pub b: Tensor<2>,
    pub scale: f64,
}

/// The outputs of projections of one input `x` `[rows, d_in]` from their frozen base products
/// side by side, `base` `[rows, Σ d_out]`: cut into each projection's `[rows, d_out]` (its
/// `width`), each with its adapter's update added when it has one. The adapters' inputs are
/// dropped out with probability `dropout`, a mask per adapter. `fused` picks the fused operations.
pub fn add_lora_updates(
    x: Tensor<2>,
    base: Tensor<2>,
    projections: &[(usize, Option<LoraFactors>)],
    dropout: f64,
    fused: bool,
) -> Vec<Tensor<2>> {
    let widths: Vec<usize> = projections.iter().map(|(width, _)| *width).collect();
    debug_assert_eq!(widths.iter().sum::<usize>(), base.dims()[1], "the widths cover the base product");
    if let Some(joint) = Joint::of(&x, &base, projections, fused) {
        let down = joint.down(x, projections, dropout);
        let updated = Tensor::from_dispatch(Dispatch::fused_lora_update(
            base.into_dispatch(),
            down.into_dispatch(),
            joint.b.into_dispatch(),
            joint.scale as f32,
            joint.blocks,
        ));
        return match widths.len() {
            1 => vec![updated],
            _ => super::split_columns(updated, &widths, fused),
        };
    }
    let bases = match widths.len() {
        1 => vec![base],
        _ => super::split_columns(base, &widths, fused),
    };
    bases
        .into_iter()
        .zip(projections)
        .map(|(base, (_, factors))| match factors {
            Some(factors) => {
                // Scaled at rank width, `[rows, r]`, rather than at the output's: the same
                // product, for a pass over a few columns instead of all of them.
                let down = super::dropout_matmul(x.clone(), dropout, factors.a.clone(), fused).mul_scalar(factors.scale);
                base + super::matmul(down, factors.b.clone(), fused)
            }
            None => base,
        })
        .collect()
}

/// The adapters of one input, joined for [`FusedKernels::fused_lora_update`]: on the CPU, in f32,
/// where they share one rank and one scale (as one LoRA configuration gives them).
struct Joint {
    /// The adapters' `b`s side by side, `[r, Σ adapted d_out]`.
    b: Tensor<2>,
    scale: f64,
    /// Each adapted projection's first column in the base product, and its width.
    blocks: Vec<(usize, usize)>,
}

impl Joint {
    fn of(x: &Tensor<2>, base: &Tensor<2>, projections: &[(usize, Option<LoraFactors>)], fused: bool) -> Option<Self> {
        if !fused || !super::is_cpu(&base.device()) || x.dtype() != DType::F32 || base.dtype() != DType::F32 {
            return None;
        }
        let adapted: Vec<&LoraFactors> = projections.iter().filter_map(|(_, factors)| factors.as_ref()).collect();
        let first = adapted.first()?;
        let alike = |f: &&LoraFactors| {
            f.scale == first.scale && f.b.dims()[0] == first.b.dims()[0] && f.b.dtype() == DType::F32 && f.a.dtype() == DType::F32
        };
        if !adapted.iter().all(alike) {
            return None;
        }
        let mut blocks = Vec::new();
        let mut start = 0;
        for (width, factors) in projections {
            if factors.is_some() {
                blocks.push((start, *width));
            }
            start += width;
        }
        let b = match adapted.len() {
            1 => first.b.clone(),
            _ => Tensor::cat(adapted.iter().map(|f| f.b.clone()).collect(), 1),
        };
        Some(Self { b, scale: first.scale, blocks })
    }

    /// `drop(x)·a_j` of every adapter side by side, `[rows, blocks · r]`: one product against the
    /// `a`s side by side, or with dropout (a mask per adapter) one product each.
    fn down(&self, x: Tensor<2>, projections: &[(usize, Option<LoraFactors>)], dropout: f64) -> Tensor<2> {
        let a: Vec<Tensor<2>> = projections.iter().filter_map(|(_, factors)| factors.as_ref().map(|f| f.a.clone())).collect();
        if dropout > 0.0 {
            let downs = a.into_iter().map(|a| super::dropout_matmul(x.clone(), dropout, a, true)).collect();
            return Tensor::cat(downs, 1);
        }
        let a = match a.len() {
            1 => a.into_iter().next().expect("one adapter"),
            _ => Tensor::cat(a, 1),
        };
        super::matmul(x, a, true)
    }
}

/// [`FusedKernels::fused_lora_update`] in Burn's tensor operations: the operation on wgpu (where
/// [`add_lora_updates`] does not join the adapters) and for tensors the CPU's `gemm` does not take.
pub(super) fn lora_update_reference(base: Tensor<2>, down: Tensor<2>, b: Tensor<2>, scale: f32, blocks: &[(usize, usize)]) -> Tensor<2> {
    let rank = b.dims()[0];
    let mut output = base;
    let mut b_start = 0;
    for (j, &(start, width)) in blocks.iter().enumerate() {
        let update = down.clone().narrow(1, j * rank, rank).matmul(b.clone().narrow(1, b_start, width)).mul_scalar(scale);
        let columns = output.clone().narrow(1, start, width) + update;
        output = output.slice_assign([0..columns.dims()[0], start..start + width], columns);
        b_start += width;
    }
    output
}

/// [`FusedKernels::fused_lora_update_backward`] in Burn's tensor operations.
pub(super) fn lora_update_backward_reference(
    down: Tensor<2>,
    b: Tensor<2>,
    grad: Tensor<2>,
    scale: f32,
    blocks: &[(usize, usize)],
) -> (Tensor<2>, Tensor<2>) {
    let rank = b.dims()[0];
    let mut grad_down = Vec::new();
    let mut grad_b = Vec::new();
    let mut b_start = 0;
    for (j, &(start, width)) in blocks.iter().enumerate() {
        let grad_j = grad.clone().narrow(1, start, width);
        let (b_j, down_j) = (b.clone().narrow(1, b_start, width), down.clone().narrow(1, j * rank, rank));
        grad_down.push(grad_j.clone().matmul(b_j.transpose()).mul_scalar(scale));
        grad_b.push(down_j.transpose().matmul(grad_j).mul_scalar(scale));
        b_start += width;
    }
    (Tensor::cat(grad_down, 1), Tensor::cat(grad_b, 1))
}

/// The backward pass of [`FusedKernels::fused_lora_update`]: the base product's gradient is the
/// output's; `down`'s and `b`'s come from the backend's backward operation.
#[derive(Debug)]
pub(super) struct LoraUpdateBackward;

impl<B: FusedKernels> Backward<B, 3> for LoraUpdateBackward {
    /// `down`, `b`, the scale and the blocks.
    type State = (FloatTensor<B>, FloatTensor<B>, f32, Vec<(usize, usize)>);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let [base_node, down_node, b_node] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (down, b, scale, blocks) = ops.state;
        if down_node.is_some() || b_node.is_some() {
            let (grad_down, grad_b) = B::fused_lora_update_backward(down, b, grad.clone(), scale, blocks);
            if let Some(node) = down_node {
                grads.register::<B>(node.id, grad_down);
            }
            if let Some(node) = b_node {
                grads.register::<B>(node.id, grad_b);
            }
        }
        if let Some(node) = base_node {
            grads.register::<B>(node.id, grad);
        }
    }
}

#[cfg(test)]
mod tests {
    use burn::backend::Dispatch;
    use burn::tensor::{Device, Distribution, Tensor};

    use super::{lora_update_backward_reference, lora_update_reference};
    use crate::kernels::{FusedKernels, assert_close};

    /// The CPU's `gemm` form of the update and of its backward pass against the tensor-op
    /// reference (the operation on wgpu), with a column between the blocks that no adapter touches.
    #[test]
    fn the_cpu_update_matches_the_reference_forward_and_backward() {
        let device = Device::flex();
        let random = |shape: [usize; 2]| Tensor::<2>::random(shape, Distribution::Normal(0.0, 1.0), &device);
        let (rows, rank, blocks) = (23, 4, vec![(0, 5), (9, 3)]);
        let (base, down, b, grad) = (random([rows, 12]), random([rows, 2 * rank]), random([rank, 8]), random([rows, 12]));

        let ours = Tensor::<2>::from_dispatch(Dispatch::fused_lora_update(
            base.clone().into_dispatch(),
            down.clone().into_dispatch(),
            b.clone().into_dispatch(),
            0.5,
            blocks.clone(),
        ));
        assert_close("update", ours, lora_update_reference(base, down.clone(), b.clone(), 0.5, &blocks));

        let (grad_down, grad_b) = Dispatch::fused_lora_update_backward(
            down.clone().into_dispatch(),
            b.clone().into_dispatch(),
            grad.clone().into_dispatch(),
            0.5,
            blocks.clone(),
        );
        let (reference_down, reference_b) = lora_update_backward_reference(down, b, grad, 0.5, &blocks);
        assert_close("grad down", Tensor::from_dispatch(grad_down), reference_down);
        assert_close("grad b", Tensor::from_dispatch(grad_b), reference_b);
    }
}
