//! The rotary position embedding as one operation on every backend (a WGSL kernel on wgpu, a loop
//! per row on every core on the CPU): Burn's tensor operations take five passes forward (negate,
//! join the halves, two products, a sum) and as many backward, for the queries and the keys of
//! every layer. Its backward pass is the inverse rotation of the gradient, so it keeps nothing
//! but the tables.

use burn::backend::Dispatch;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn::backend::tensor::FloatTensor;
use burn::tensor::Tensor;

use super::extension::FusedKernels;

/// Rotates `x` (`[batch, heads, len, head_dim]`) by the tables `cos`, `sin` (`[1 or batch, len,
/// rotary_dim]`, the two halves of each row alike, as RoPE builds them): the first `rotary_dim`
/// dimensions of each head, the rest passed through. `fused` picks the fused operation where the
/// whole head rotates (off, or a partial rotation: Burn's tensor operations).
pub fn rotary(x: Tensor<4>, cos: &Tensor<3>, sin: &Tensor<3>, fused: bool) -> Tensor<4> {
    let (head_dim, rotary_dim) = (x.dims()[3], cos.dims()[2]);
    if super::fused_on(fused, &x.device()) && rotary_dim == head_dim && head_dim.is_multiple_of(2) && x.dims().iter().all(|&d| d > 0) {
        let output = Dispatch::fused_rotary(x.into_dispatch(), cos.clone().into_dispatch(), sin.clone().into_dispatch(), false);
        Tensor::from_dispatch(output)
    } else {
        rotary_reference(x, cos, sin)
    }
}

/// [`rotary`] in Burn's tensor operations: transformers' `x·cos + rotate_half(x)·sin`.
pub fn rotary_reference(x: Tensor<4>, cos: &Tensor<3>, sin: &Tensor<3>) -> Tensor<4> {
    let (head_dim, rotary_dim) = (x.dims()[3], cos.dims()[2]);
    if rotary_dim < head_dim {
        let rotated = rotary_reference(x.clone().narrow(3, 0, rotary_dim), cos, sin);
        return Tensor::cat(vec![rotated, x.narrow(3, rotary_dim, head_dim - rotary_dim)], 3);
    }
    let half = head_dim / 2;
    let first = x.clone().narrow(3, 0, half);
    let second = x.clone().narrow(3, half, half);
    let rotated = Tensor::cat(vec![second.neg(), first], 3);
    let cos = cos.clone().unsqueeze_dim::<4>(1);
    let sin = sin.clone().unsqueeze_dim::<4>(1);
    x * cos + rotated * sin
}

/// The backward pass of [`rotary`]: the gradient rotated the opposite way (the tables are
/// constants).
#[derive(Debug)]
pub(super) struct RotaryBackward;

impl<B: FusedKernels> Backward<B, 1> for RotaryBackward {
    /// `cos`, `sin`, and whether the forward rotation was the inverse one.
    type State = (FloatTensor<B>, FloatTensor<B>, bool);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let [x_node] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (cos, sin, inverse) = ops.state;
        if let Some(node) = x_node {
            grads.register::<B>(node.id, B::fused_rotary(grad, cos, sin, !inverse));
        }
    }
}
