//! Matmuls against a frozen weight packed in blocks (`model::packed`): the dense matmul kernels of
//! `shaders/matmul*.wgsl` reading the weight through `packed_common.wgsl` on every wgpu device
//! (with `--kernels generic` too: no tensor-op path keeps the weight packed), the same numbers on
//! the CPU through a dequantized copy that lives only for the one product.
//!
//! Under autodiff the operation keeps only the packed weight (which the model holds anyway) for
//! its backward pass: the input gradient `dy · W` dequantizes the blocks again, and a frozen base
//! has no gradient of its own. Burn's `q_matmul` would instead dequantize `W` to a dense tensor
//! that the graph keeps until the backward pass, a dense copy of every layer at the peak.

use burn::backend::Dispatch;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn::backend::tensor::IntTensor;
use burn::tensor::{DType, Tensor, TensorData};

use super::extension::FusedKernels;
use crate::model::packed::{HostPacked, PackedWeight};

/// `x · Wᵀ` for `x` `[m, in]` and a packed `W` (`[out, in]`): the base part of a linear layer.
pub fn packed_matmul(x: Tensor<2>, w: &PackedWeight) -> Tensor<2> {
    let x = if x.dtype() == DType::F32 { x } else { x.cast(DType::F32) };
    let layout = w.layout;
    Tensor::from_dispatch(Dispatch::packed_matmul(
        x.into_dispatch(),
        w.values.clone().into_dispatch(),
        w.params.clone().into_dispatch(),
        layout.rows,
        layout.cols,
        layout.bits,
    ))
}

/// The dequantized weight `[out, in]` as an f32 tensor on `device`: what the CPU multiplies by,
/// and the tests' reference.
pub fn dense(w: &HostPacked, device: &burn::tensor::Device) -> Tensor<2> {
    Tensor::from_data(TensorData::new(w.dequantize(), [w.layout.rows, w.layout.cols]), device)
}

/// The input gradient of [`packed_matmul`]; the packed weight is its whole state.
#[derive(Debug)]
pub(super) struct PackedMatmulBackward;

impl<B: FusedKernels> Backward<B, 1> for PackedMatmulBackward {
    /// `values`, `params`, rows, cols, bits.
    type State = (IntTensor<B>, IntTensor<B>, usize, usize, usize);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let [x_node] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (values, params, rows, cols, bits) = ops.state;
        if let Some(node) = x_node {
            grads.register::<B>(node.id, B::packed_matmul_input_grad(grad, values, params, rows, cols, bits));
        }
    }
}
