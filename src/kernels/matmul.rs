//! `a · b` of 2-D f32 matrices with the WGSL kernels of `shaders/matmul*.wgsl` on software Vulkan
//! (lavapipe), where they run at about twice the speed of CubeCL's matmul (BENCHMARKS.md), and
//! with Burn's matmul everywhere else: on GPUs CubeCL's tiled kernels are the faster ones.

use burn::backend::Dispatch;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn::backend::tensor::FloatTensor;
use burn::tensor::{DType, Tensor};

use super::extension::FusedKernels;

/// `a · b` for `a` `[m, k]` and `b` `[k, n]`; `fused` picks the WGSL kernels where they win.
pub fn matmul(a: Tensor<2>, b: Tensor<2>, fused: bool) -> Tensor<2> {
    let wins = fused && a.dtype() == DType::F32 && b.dtype() == DType::F32 && crate::device::is_software_wgpu(&a.device());
    if wins {
        Tensor::from_dispatch(Dispatch::fused_matmul(a.into_dispatch(), b.into_dispatch()))
    } else {
        a.matmul(b)
    }
}

/// The backward pass of [`matmul`]: `grad · bᵀ` and `aᵀ · grad`, with the same kernels (the
/// transposes are views; the kernels read a transposed `b` where it lies).
#[derive(Debug)]
pub(super) struct MatmulBackward;

impl<B: FusedKernels> Backward<B, 2> for MatmulBackward {
    type State = (FloatTensor<B>, FloatTensor<B>);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let [a_node, b_node] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (a, b) = ops.state;
        if let Some(node) = b_node {
            grads.register::<B>(node.id, B::fused_matmul(B::float_transpose(a), grad.clone()));
        }
        if let Some(node) = a_node {
            grads.register::<B>(node.id, B::fused_matmul(grad, B::float_transpose(b)));
        }
    }
}
