//! `a · b` of 2-D matrices (f32, the right one also f16): with the WGSL kernels of
//! `shaders/matmul*.wgsl` on software Vulkan (lavapipe), where they run at about twice the speed
//! of CubeCL's matmul (BENCHMARKS.md); on the CPU with `gemm` called directly (`cpu_matmul.rs`);
//! with Burn's matmul on GPUs, where CubeCL's tiled kernels are the faster ones.

use burn::backend::Dispatch;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn::backend::tensor::FloatTensor;
use burn::tensor::{DType, Tensor};

use super::extension::FusedKernels;

/// `a · b` for an f32 `a` `[m, k]` and a `b` `[k, n]` in f32 or f16 (a weight stored in half
/// precision); the result is f32. `fused` picks the WGSL kernels where they win, which widen an
/// f16 `b` to f32 as they read it, and the direct `gemm` call on the CPU for f32. Elsewhere an
/// f16 `b` multiplies in f16, `a` cast to it.
pub fn matmul(a: Tensor<2>, b: Tensor<2>, fused: bool) -> Tensor<2> {
    let (a_type, b_type) = (a.dtype(), b.dtype());
    let fused = super::fused_on(fused, &a.device());
    let wgsl = fused
        && a_type == DType::F32
        && matches!(b_type, DType::F32 | DType::F16)
        && super::is_wgpu(&a.device())
        && super::kernel_shape() == super::KernelShape::Software;
    let cpu = fused && a_type == DType::F32 && b_type == DType::F32 && super::is_cpu(&a.device());
    if wgsl || cpu {
        Tensor::from_dispatch(Dispatch::fused_matmul(a.into_dispatch(), b.into_dispatch()))
    } else if a_type == b_type {
        a.matmul(b)
    } else {
        a.cast(b_type).matmul(b).cast(a_type)
    }
}

/// The backward pass of [`matmul`]: `grad · bᵀ` and `aᵀ · grad`, with the same kernels (the
/// transposes are views; the kernels read a transposed `b` where it lies).
#[derive(Debug)]
pub(super) struct MatmulBackward;

impl<B: FusedKernels> Backward<B, 2> for MatmulBackward {
    /// `a` when `b` needs a gradient, `b` when `a` does.
    type State = (Option<FloatTensor<B>>, Option<FloatTensor<B>>);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let [a_node, b_node] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (a, b) = ops.state;
        if let (Some(node), Some(a)) = (b_node, a) {
            grads.register::<B>(node.id, B::fused_matmul(B::float_transpose(a), grad.clone()));
        }
        if let (Some(node), Some(b)) = (a_node, b) {
            grads.register::<B>(node.id, B::fused_matmul(grad, B::float_transpose(b)));
        }
    }
}
