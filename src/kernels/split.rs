//! One product cut into the outputs of several projections: `x · [Wq Wk Wv]` split into `q`, `k`
//! and `v` by columns (see `model::shared_base`).
//!
//! The pieces are views of the product. Under autodiff, Burn would give each view a backward
//! pass of its own that pads its gradient with zeros to the product's width, and then add the
//! padded gradients up: two launches a piece and one an addition, each over the whole width.
//! Here the pieces' gradients meet instead: each piece's backward pass leaves its gradient in a
//! place the pieces share, and the last to arrive joins them side by side (one copy a piece) and
//! hands the product one gradient, so the input's gradient takes one matmul for all of them.

use std::sync::{Arc, Mutex};

use burn::backend::Dispatch;
use burn::backend::Slice;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn::backend::tensor::FloatTensor;
use burn::tensor::Tensor;

use super::extension::FusedKernels;

/// `product` `[rows, Σ widths]` cut into `[rows, width]` pieces, left to right; `fused` picks the
/// operation whose backward pass joins the pieces' gradients (off: Burn's `narrow`).
pub fn split_columns(product: Tensor<2>, widths: &[usize], fused: bool) -> Vec<Tensor<2>> {
    debug_assert_eq!(widths.iter().sum::<usize>(), product.dims()[1], "the widths cover the product");
    if super::fused_on(fused, &product.device()) {
        return Dispatch::split_columns(product.into_dispatch(), widths.to_vec()).into_iter().map(Tensor::from_dispatch).collect();
    }
    column_ranges(widths).map(|(start, width)| product.clone().narrow(1, start, width)).collect()
}

/// Each piece's first column and width, left to right.
fn column_ranges(widths: &[usize]) -> impl Iterator<Item = (usize, usize)> + '_ {
    widths.iter().scan(0, |start, &width| {
        let first = *start;
        *start += width;
        Some((first, width))
    })
}

/// The pieces of `product` as views, left to right: the forward pass on every backend.
pub(super) fn column_views<B: burn::backend::Backend>(product: FloatTensor<B>, widths: &[usize]) -> Vec<FloatTensor<B>> {
    column_ranges(widths)
        .map(|(start, width)| {
            let columns = Slice::new(start as isize, Some((start + width) as isize), 1);
            B::float_slice(product.clone(), &[Slice::full(), columns])
        })
        .collect()
}

/// Where the pieces of one split leave their gradients until the last one arrives.
#[derive(Debug)]
pub(super) struct Meeting<T> {
    grads: Vec<Option<T>>,
}

impl<T> Meeting<T> {
    pub(super) fn new(pieces: usize) -> Arc<Mutex<Self>> {
        Arc::new(Mutex::new(Self { grads: (0..pieces).map(|_| None).collect() }))
    }
}

/// The backward pass of one piece (see the module's documentation). Every piece of a split must
/// reach the loss: a product's gradient is handed on only once all its pieces' have arrived.
#[derive(Debug)]
pub(super) struct SplitBackward;

impl<B: FusedKernels> Backward<B, 1> for SplitBackward {
    /// This piece's index, and the meeting place of the split's pieces.
    type State = (usize, Arc<Mutex<Meeting<FloatTensor<B>>>>);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let [product_node] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (index, meeting) = ops.state;
        // A poisoned lock means another piece's backward pass panicked: that panic is the error.
        let mut meeting = meeting.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        meeting.grads[index] = Some(grad);
        if meeting.grads.iter().any(Option::is_none) {
            return;
        }
        let pieces: Vec<FloatTensor<B>> = meeting.grads.iter_mut().filter_map(Option::take).collect();
        if let Some(node) = product_node {
            grads.register::<B>(node.id, B::float_cat(pieces, 1));
        }
    }
}
