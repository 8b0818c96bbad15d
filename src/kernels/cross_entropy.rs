//! Next-token cross-entropy through the language-model head, vocabulary-chunked, that never keeps
//! a `[tokens, vocab]` matrix: under autodiff the gradients with respect to the hidden states and
//! the head are computed chunk by chunk during the forward pass (the loss is a sum, so backward
//! only scales them), and each chunk's logits are freed before the next is formed.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::tensor::{FloatTensor, IntTensor};
use burn::backend::{Autodiff, Dispatch, DispatchKindConversion, DispatchTensor};
use burn::tensor::{Int, Tensor};

use super::extension::FusedKernels;
use crate::model::packed::{PackedLayout, PackedWeight};

/// Σ over rows of `−log softmax(hidden · head)[target]`, `hidden` `[rows, dim]`, `head`
/// `[dim, vocab]`, `chunk` rows of logits at a time. Differentiable with respect to both.
pub fn cross_entropy(hidden: Tensor<2>, head: Tensor<2>, targets: &[u32], chunk: usize) -> Tensor<1> {
    Tensor::from_dispatch(Dispatch::fused_cross_entropy(hidden.into_dispatch(), head.into_dispatch(), targets.to_vec(), chunk.max(1)))
}

/// [`cross_entropy`] through a frozen head packed in blocks (`[vocab, dim]`, see
/// `model::packed`): each chunk's logits come from the packed matmul, and the gradient reaches
/// `hidden` only.
pub fn cross_entropy_packed(hidden: Tensor<2>, head: &PackedWeight, targets: &[u32], chunk: usize) -> Tensor<1> {
    let PackedLayout { rows, cols, bits } = head.layout;
    Tensor::from_dispatch(Dispatch::fused_cross_entropy_packed(
        hidden.into_dispatch(),
        head.values.clone().into_dispatch(),
        head.params.clone().into_dispatch(),
        (rows, cols, bits),
        targets.to_vec(),
        chunk.max(1),
    ))
}

/// [`cross_entropy`] through a frozen head in blocks of columns (`[dim, vocab_i]` each, left to
/// right: a head larger than one storage binding, see `model::vocabulary`). The loss and the
/// hidden states' gradient are computed chunk by chunk on untracked tensors, as the fused loss
/// computes them, each chunk's logits the blocks' side by side; the gradient joins the graph
/// through `hidden · g` less its own value, whose gradient is `g` and whose value is nothing. No
/// chunk's logits outlive its chunk.
pub fn cross_entropy_blocks(hidden: Tensor<2>, blocks: &[Tensor<2>], targets: &[u32], chunk: usize) -> Tensor<1> {
    let wanted = Wanted { hidden: hidden.is_tracked(), head: false };
    let out = chunked(hidden.clone().detach(), &ChunkHead::Blocks(blocks.to_vec()), targets, chunk.max(1), wanted);
    match out.grad_hidden {
        Some(grad) => {
            let tie = (hidden * grad).sum();
            out.loss + tie.clone() - tie.detach()
        }
        None => out.loss,
    }
}

/// The head a chunked loss multiplies by.
#[allow(clippy::large_enum_variant)] // One per loss, never stored.
enum ChunkHead {
    /// `[dim, vocab]`.
    Dense(Tensor<2>),
    /// `[vocab, dim]` in blocks, frozen.
    Packed(PackedWeight),
    /// `[dim, vocab_i]` blocks of columns, left to right, frozen.
    Blocks(Vec<Tensor<2>>),
}

impl ChunkHead {
    fn packed<B: FusedKernels>(values: IntTensor<B>, params: IntTensor<B>, (rows, cols, bits): (usize, usize, usize)) -> Self
    where
        DispatchTensor: DispatchKindConversion<B>,
    {
        let values = Tensor::<1, Int>::from_primitive::<B>(values);
        let params = Tensor::<1, Int>::from_primitive::<B>(params);
        Self::Packed(PackedWeight { values, params, layout: PackedLayout { rows, cols, bits } })
    }

    fn logits(&self, h: Tensor<2>) -> Tensor<2> {
        match self {
            Self::Dense(head) => super::matmul(h, head.clone(), true),
            Self::Packed(head) => super::packed_matmul(h, head),
            Self::Blocks(blocks) => Tensor::cat(blocks.iter().map(|b| super::matmul(h.clone(), b.clone(), true)).collect(), 1),
        }
    }

    /// `grad · headᵀ`: the gradient of the summed loss for the chunk's hidden states.
    fn hidden_grad(&self, grad: Tensor<2>) -> Tensor<2> {
        match self {
            Self::Dense(head) => super::matmul(grad, head.clone().transpose(), true),
            Self::Blocks(blocks) => {
                let mut start = 0;
                let parts = blocks.iter().map(|b| {
                    let width = b.dims()[1];
                    let part = super::matmul(grad.clone().narrow(1, start, width), b.clone().transpose(), true);
                    start += width;
                    part
                });
                parts.reduce(|sum, part| sum + part).expect("a head has at least one block")
            }
            Self::Packed(head) => {
                let PackedLayout { rows, cols, bits } = head.layout;
                Tensor::from_dispatch(Dispatch::packed_matmul_input_grad(
                    grad.into_dispatch(),
                    head.values.clone().into_dispatch(),
                    head.params.clone().into_dispatch(),
                    rows,
                    cols,
                    bits,
                ))
            }
        }
    }
}

/// Which gradients [`chunked`] computes alongside the loss.
#[derive(Clone, Copy)]
struct Wanted {
    hidden: bool,
    head: bool,
}

struct Chunked {
    loss: Tensor<1>,
    grad_hidden: Option<Tensor<2>>,
    grad_head: Option<Tensor<2>>,
}

/// The loss (and the wanted gradients of the summed loss) on plain, untracked tensors. A packed
/// head is frozen: it never has a gradient.
fn chunked(hidden: Tensor<2>, head: &ChunkHead, targets: &[u32], chunk: usize, wanted: Wanted) -> Chunked {
    let rows = hidden.dims()[0];
    let device = hidden.device();
    let mut loss = Tensor::<1>::zeros([1], &device);
    let mut grad_hidden = Vec::new();
    let mut grad_head: Option<Tensor<2>> = None;
    for start in (0..rows).step_by(chunk) {
        let n = chunk.min(rows - start);
        let h = hidden.clone().narrow(0, start, n);
        let t = targets[start..start + n].to_vec();
        let logits = head.logits(h.clone());
        let (lse, nll) = Dispatch::cross_entropy_rows(logits.clone().into_dispatch(), t.clone());
        loss = loss + Tensor::<1>::from_dispatch(nll).sum();
        if wanted.hidden || wanted.head {
            let grad = Tensor::<2>::from_dispatch(Dispatch::cross_entropy_grad(logits.into_dispatch(), lse, t));
            if wanted.hidden {
                grad_hidden.push(head.hidden_grad(grad.clone()));
            }
            if wanted.head {
                let g = super::matmul(h.transpose(), grad, true);
                grad_head = Some(match grad_head.take() {
                    Some(sum) => sum + g,
                    None => g,
                });
            }
        }
    }
    Chunked { loss, grad_hidden: wanted.hidden.then(|| Tensor::cat(grad_hidden, 0)), grad_head }
}

/// [`chunked`] on `B`'s own tensors: the loss `[1]` and the wanted gradients.
fn chunked_primitives<B>(
    hidden: FloatTensor<B>,
    head: &ChunkHead,
    targets: &[u32],
    chunk: usize,
    wanted: Wanted,
) -> (FloatTensor<B>, Option<FloatTensor<B>>, Option<FloatTensor<B>>)
where
    B: FusedKernels,
    DispatchTensor: DispatchKindConversion<B>,
{
    let out = chunked(Tensor::from_primitive::<B>(hidden), head, targets, chunk, wanted);
    let primitive = |t: Tensor<2>| t.try_into_primitive::<B>().expect("gradients stay on their backend");
    let loss = out.loss.try_into_primitive::<B>().expect("the loss stays on its backend");
    (loss, out.grad_hidden.map(primitive), out.grad_head.map(primitive))
}

/// The loss on an inner (non-autodiff) backend: no gradients.
pub(super) fn loss_only<B>(hidden: FloatTensor<B>, head: FloatTensor<B>, targets: Vec<u32>, chunk: usize) -> FloatTensor<B>
where
    B: FusedKernels,
    DispatchTensor: DispatchKindConversion<B>,
{
    let head = ChunkHead::Dense(Tensor::from_primitive::<B>(head));
    chunked_primitives::<B>(hidden, &head, &targets, chunk, Wanted { hidden: false, head: false }).0
}

/// [`loss_only`] through a packed head.
pub(super) fn loss_only_packed<B>(
    hidden: FloatTensor<B>,
    values: IntTensor<B>,
    params: IntTensor<B>,
    layout: (usize, usize, usize),
    targets: Vec<u32>,
    chunk: usize,
) -> FloatTensor<B>
where
    B: FusedKernels,
    DispatchTensor: DispatchKindConversion<B>,
{
    let head = ChunkHead::packed::<B>(values, params, layout);
    chunked_primitives::<B>(hidden, &head, &targets, chunk, Wanted { hidden: false, head: false }).0
}

#[derive(Debug)]
struct CrossEntropyBackward;

impl<B: FusedKernels> Backward<B, 2> for CrossEntropyBackward {
    /// The gradients of the summed loss, computed in the forward pass.
    type State = (Option<FloatTensor<B>>, Option<FloatTensor<B>>);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let [hidden_node, head_node] = ops.parents;
        // The loss is a sum: its upstream gradient (a scalar) scales the saved gradients.
        let upstream = grads.consume::<B>(&ops.node);
        let scale = |g: FloatTensor<B>| B::float_mul(g, B::float_reshape(upstream.clone(), [1, 1].into()));
        let (grad_hidden, grad_head) = ops.state;
        if let (Some(node), Some(g)) = (hidden_node, grad_hidden) {
            grads.register::<B>(node.id, scale(g));
        }
        if let (Some(node), Some(g)) = (head_node, grad_head) {
            grads.register::<B>(node.id, scale(g));
        }
    }
}

pub(super) fn autodiff_loss<B, C>(
    hidden: FloatTensor<Autodiff<B, C>>,
    head: FloatTensor<Autodiff<B, C>>,
    targets: Vec<u32>,
    chunk: usize,
) -> FloatTensor<Autodiff<B, C>>
where
    B: FusedKernels,
    C: CheckpointStrategy,
    DispatchTensor: DispatchKindConversion<B>,
{
    let wanted = Wanted { hidden: hidden.is_tracked(), head: head.is_tracked() };
    let (hidden, hidden_node) = hidden.into_parts();
    let (head, head_node) = head.into_parts();
    let head = ChunkHead::Dense(Tensor::from_primitive::<B>(head));
    let (loss, grad_hidden, grad_head) = chunked_primitives::<B>(hidden, &head, &targets, chunk, wanted);
    match CrossEntropyBackward.prepare::<C>([hidden_node, head_node]).compute_bound().stateful() {
        OpsKind::Tracked(prep) => prep.finish((grad_hidden, grad_head), loss),
        OpsKind::UnTracked(prep) => prep.finish(loss),
    }
}

/// [`autodiff_loss`] through a frozen packed head: the gradient reaches `hidden` only.
pub(super) fn autodiff_loss_packed<B, C>(
    hidden: FloatTensor<Autodiff<B, C>>,
    values: IntTensor<B>,
    params: IntTensor<B>,
    layout: (usize, usize, usize),
    targets: Vec<u32>,
    chunk: usize,
) -> FloatTensor<Autodiff<B, C>>
where
    B: FusedKernels,
    C: CheckpointStrategy,
    DispatchTensor: DispatchKindConversion<B>,
{
    let wanted = Wanted { hidden: hidden.is_tracked(), head: false };
    let (hidden, hidden_node) = hidden.into_parts();
    let head = ChunkHead::packed::<B>(values, params, layout);
    let (loss, grad_hidden, _) = chunked_primitives::<B>(hidden, &head, &targets, chunk, wanted);
    match PackedCrossEntropyBackward.prepare::<C>([hidden_node]).compute_bound().stateful() {
        OpsKind::Tracked(prep) => prep.finish(grad_hidden, loss),
        OpsKind::UnTracked(prep) => prep.finish(loss),
    }
}

/// The backward pass of [`autodiff_loss_packed`]: the hidden states' gradient, computed in the
/// forward pass, scaled by the upstream scalar.
#[derive(Debug)]
struct PackedCrossEntropyBackward;

impl<B: FusedKernels> Backward<B, 1> for PackedCrossEntropyBackward {
    type State = Option<FloatTensor<B>>;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let [hidden_node] = ops.parents;
        let upstream = grads.consume::<B>(&ops.node);
        if let (Some(node), Some(g)) = (hidden_node, ops.state) {
            grads.register::<B>(node.id, B::float_mul(g, B::float_reshape(upstream, [1, 1].into())));
        }
    }
}
