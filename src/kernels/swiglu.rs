//! The SwiGLU activation of the MLP, `silu(gate) · up`, fused on every backend (a WGSL kernel on
//! wgpu, one pass on every core on the CPU): the backward pass recomputes `σ(gate)` and keeps only
//! the two inputs (the tensor-op version keeps `σ(gate)` and `silu(gate)` as well, two more
//! `[tokens × intermediate]` tensors per layer).

use burn::backend::Dispatch;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn::backend::tensor::FloatTensor;
use burn::tensor::Tensor;
use burn::tensor::activation::silu;

use super::extension::FusedKernels;

/// `silu(gate) · up`; `fused` picks the fused operation (off: Burn's tensor operations).
pub fn swiglu<const D: usize>(gate: Tensor<D>, up: Tensor<D>, fused: bool) -> Tensor<D> {
    if super::fused_on(fused, &gate.device()) {
        let shape = gate.shape();
        let n = shape.num_elements();
        let output = Dispatch::fused_swiglu(gate.reshape([n]).into_dispatch(), up.reshape([n]).into_dispatch());
        Tensor::<1>::from_dispatch(output).reshape(shape)
    } else {
        silu(gate) * up
    }
}

#[derive(Debug)]
pub(super) struct SwigluBackward;

impl<B: FusedKernels> Backward<B, 2> for SwigluBackward {
    type State = (FloatTensor<B>, FloatTensor<B>);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let [gate_node, up_node] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (gate, up) = ops.state;
        let (grad_gate, grad_up) = B::fused_swiglu_backward(gate, up, grad);
        for (node, grad) in [(gate_node, grad_gate), (up_node, grad_up)] {
            if let Some(node) = node {
                grads.register::<B>(node.id, grad);
            }
        }
    }
}
