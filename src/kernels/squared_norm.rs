//! The squared global norm of a set of tensors, `Σ t²` over all their elements, as global-norm
//! gradient clipping needs it: one pass over each tensor into partial sums (a WGSL kernel on wgpu,
//! a workgroup per slot; every core on the CPU), then one sum. Burn's operations take a square, a
//! sum and an addition per tensor: some 1,200 launches a step for LoRA on a 30-layer model.

use burn::backend::Dispatch;
use burn::tensor::Tensor;

use super::extension::FusedKernels;

/// Elements each slot (a workgroup on wgpu) takes at least, and the most slots one tensor gets:
/// small tensors (LoRA's) take one or a few, the largest (a full fine-tuning's embedding) 1,024.
const ELEMENTS_PER_SLOT: usize = 1 << 14;
const MAX_SLOTS: usize = 1024;

/// The partial sums a tensor of `n` elements is given.
pub(super) fn slots(n: usize) -> usize {
    n.div_ceil(ELEMENTS_PER_SLOT).clamp(1, MAX_SLOTS)
}

/// `Σ t²` over every element of `tensors` (flat, outside autodiff), `[1]`; `None` when there are
/// none. `fused` picks the fused operation (off: Burn's tensor operations).
pub fn squared_norm(tensors: Vec<Tensor<1>>, fused: bool) -> Option<Tensor<1>> {
    let device = tensors.first()?.device();
    if !super::fused_on(fused, &device) {
        return tensors.into_iter().map(|t| t.square().sum()).reduce(|total, sum| total + sum);
    }
    let mut partials = Tensor::<1>::zeros([tensors.iter().map(|t| slots(t.dims()[0])).sum::<usize>()], &device);
    let mut slot = 0;
    for t in tensors {
        let n = t.dims()[0];
        partials = Tensor::from_dispatch(Dispatch::fused_add_squares(t.into_dispatch(), partials.into_dispatch(), slot));
        slot += slots(n);
    }
    Some(partials.sum())
}
