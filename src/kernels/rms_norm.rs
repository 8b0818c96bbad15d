//! RMSNorm as one operation on every backend: one pass over each row forward and one backward (a
//! WGSL kernel on wgpu, a loop per row on every core on the CPU), keeping the input and each row's
//! `1/rms` for the backward pass. Burn's tensor operations take six launches forward and about ten
//! backward, each a pass over the hidden states on one CPU core; a decoder layer has two norms.

use burn::backend::Dispatch;
use burn::backend::TensorMetadata;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn::backend::tensor::FloatTensor;
use burn::tensor::Tensor;

use super::extension::FusedKernels;

/// `x · weight / √(mean(x²) + eps)` over the last axis of `x`, `weight` `[dim]`; `fused` picks the
/// fused operation (off: Burn's tensor operations).
pub fn rms_norm<const D: usize>(x: Tensor<D>, weight: Tensor<1>, eps: f64, fused: bool) -> Tensor<D> {
    let dims = x.dims();
    let rows = dims[..D - 1].iter().product::<usize>();
    if !super::fused_on(fused, &x.device()) || rows == 0 || dims[D - 1] == 0 {
        return rms_norm_reference(x, weight, eps);
    }
    let (output, _inv_rms) = Dispatch::fused_rms_norm(x.reshape([rows, dims[D - 1]]).into_dispatch(), weight.into_dispatch(), eps as f32);
    Tensor::<2>::from_dispatch(output).reshape(dims)
}

/// [`rms_norm`] in Burn's tensor operations.
pub fn rms_norm_reference<const D: usize>(x: Tensor<D>, weight: Tensor<1>, eps: f64) -> Tensor<D> {
    let rms = x.clone().square().mean_dim(D - 1).add_scalar(eps).sqrt();
    x / rms * weight.unsqueeze::<D>()
}

/// The backward pass of [`rms_norm`]: the input's gradient by the backend's own pass; the weight's
/// (when it is trained) as `Σ_rows grad ∘ x · r` in tensor operations.
#[derive(Debug)]
pub(super) struct RmsNormBackward;

impl<B: FusedKernels> Backward<B, 2> for RmsNormBackward {
    /// The input `[rows, dim]`, the weight, each row's `1/rms`.
    type State = (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let [x_node, weight_node] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (x, weight, inv_rms) = ops.state;
        if let Some(node) = weight_node {
            let [rows, dim] = x.shape().dims::<2>();
            let normalised = B::float_mul(x.clone(), B::float_reshape(inv_rms.clone(), [rows, 1].into()));
            let summed = B::float_sum_dim(B::float_mul(grad.clone(), normalised), 0);
            grads.register::<B>(node.id, B::float_reshape(summed, [dim].into()));
        }
        if let Some(node) = x_node {
            grads.register::<B>(node.id, B::fused_rms_norm_backward(x, weight, inv_rms, grad));
        }
    }
}
