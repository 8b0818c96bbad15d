//! Causal grouped-query attention as one operation that keeps only its inputs, output and row
//! log-sum-exp for the backward pass: WGSL kernels on wgpu, tensor operations on the CPU.

use burn::backend::Dispatch;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn::backend::tensor::FloatTensor;
use burn::tensor::activation::softmax;
use burn::tensor::{Device, Tensor, TensorData};

use super::extension::FusedKernels;
use super::wgsl::supports_head_dim;

/// Which keys each query of an attention sees, and how its scores are bounded. The scores are
/// `q·k / √head_dim`: a model that scales them otherwise scales its queries first.
#[derive(Clone, Copy, Debug, Default)]
pub struct Scores<'a> {
    /// The absolute position of query 0 (the keys before it are cached).
    pub start: usize,
    /// Each query sees keys at most this many positions back, itself included, when set.
    pub window: Option<usize>,
    /// A [`padding_mask`] hiding each sequence's left padding from every query.
    pub padding: Option<&'a Tensor<4>>,
    /// Scores pass through `cap · tanh(score / cap)` before the mask (Gemma 2).
    pub softcap: Option<f64>,
}

/// Attention of `q` (`[batch, heads, q_len, head_dim]`) over `k` and `v`
/// (`[batch, kv_heads, kv_len, head_dim]`) as `scores` says. `fused` picks the WGSL kernels
/// where they apply; they know neither padding, which only batched inference uses, nor
/// soft-capping, so those take the tensor-op path.
pub fn attention(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, scores: &Scores, fused: bool) -> Tensor<4> {
    // Every backend has the fused operation: WGSL kernels on wgpu, tensor operations on the CPU,
    // both keeping only the inputs, the output and the log-sum-exp for the backward pass.
    let plain = scores.padding.is_none() && scores.softcap.is_none();
    let fused = super::fused_on(fused, &q.device());
    if fused && plain && supports_head_dim(q.dims()[3]) {
        let (start, window) = (scores.start, scores.window.unwrap_or(0));
        let (output, _lse) = Dispatch::fused_attention(q.into_dispatch(), k.into_dispatch(), v.into_dispatch(), start, window);
        Tensor::from_dispatch(output)
    } else {
        attention_reference(q, k, v, scores)
    }
}

/// The same attention in plain tensor operations, for every backend.
pub fn attention_reference(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, scores: &Scores) -> Tensor<4> {
    let shape = q.dims();
    let scores = masked_scores(q, k, scores);
    softmax(scores, 3).matmul(v).reshape(shape)
}

/// `Q Kᵀ / √head_dim`, soft-capped when asked, plus the causal mask (and the padding's, when
/// there is any), `[batch, kv_heads, rep·q_len, kv_len]`: the query heads that share a key/value
/// head are stacked along the sequence axis, so keys and values are never repeated.
fn masked_scores(q: Tensor<4>, k: Tensor<4>, scores: &Scores) -> Tensor<4> {
    let [batch, heads, len, head_dim] = q.dims();
    let [_, kv_heads, total, _] = k.dims();
    let rep = heads / kv_heads;
    let device = q.device();
    let mask = causal_mask(scores.start, len, total, rep, scores.window, &device);
    let q = q.reshape([batch, kv_heads, rep * len, head_dim]);
    let raw = q.matmul(k.swap_dims(2, 3)).div_scalar((head_dim as f64).sqrt());
    let raw = match scores.softcap {
        Some(cap) => raw.div_scalar(cap).tanh().mul_scalar(cap),
        None => raw,
    };
    let masked = raw + mask.unsqueeze::<4>();
    match scores.padding {
        Some(mask) => masked + mask.clone(),
        None => masked,
    }
}

/// Additive mask `[batch, 1, 1, total]` hiding each sequence's first `left_padding[b]` keys
/// from every query: built once per forward pass, shared by its layers.
pub fn padding_mask(left_padding: &[usize], total: usize, device: &Device) -> Tensor<4> {
    let values: Vec<f32> = left_padding.iter().flat_map(|&pad| (0..total).map(move |key| if key < pad { -1.0e9 } else { 0.0 })).collect();
    Tensor::from_data(TensorData::new(values, [left_padding.len(), 1, 1, total]), device)
}

/// Additive causal mask `[rep·len, total]` (0 where attention is allowed, a large negative number
/// elsewhere), repeated `rep` times along the rows for the stacked query heads.
fn causal_mask(start: usize, len: usize, total: usize, rep: usize, window: Option<usize>, device: &Device) -> Tensor<2> {
    let mut values = Vec::with_capacity(rep * len * total);
    for _ in 0..rep {
        for i in 0..len {
            let query = start + i;
            for key in 0..total {
                let visible = key <= query && window.is_none_or(|w| query - key < w);
                values.push(if visible { 0.0f32 } else { -1.0e9 });
            }
        }
    }
    Tensor::from_data(TensorData::new(values, [rep * len, total]), device)
}

/// The backward pass of the fused attention: the kernels recompute the probabilities from the
/// saved log-sum-exp rather than keeping them.
#[derive(Debug)]
pub(super) struct AttentionBackward;

pub(super) type AttentionState<B> = (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>, FloatTensor<B>, FloatTensor<B>, usize, usize);

impl<B: FusedKernels> Backward<B, 3> for AttentionBackward {
    type State = AttentionState<B>;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let [q_node, k_node, v_node] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (q, k, v, output, lse, q_start, window) = ops.state;
        let (grad_q, grad_k, grad_v) = B::fused_attention_backward(q, k, v, output, lse, grad, q_start, window);
        for (node, grad) in [(q_node, grad_q), (k_node, grad_k), (v_node, grad_v)] {
            if let Some(node) = node {
                grads.register::<B>(node.id, grad);
            }
        }
    }
}
