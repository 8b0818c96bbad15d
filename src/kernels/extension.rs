//! The one backend-extension trait behind every fused kernel: implemented for Burn's CubeCL
//! backend with WGSL (`launch.rs`) and for autodiff with hand-written backward passes
//! (`attention.rs`).

use burn::backend::backend_extension;
use burn::backend::tensor::FloatTensor;

#[backend_extension(Cube, Autodiff)]
pub trait FusedKernels: burn::backend::Backend {
    /// Causal grouped-query attention. `q`: `[batch, heads, q_len, head_dim]`; `k`, `v`:
    /// `[batch, kv_heads, kv_len, head_dim]`; query 0 sits at absolute position `q_start`; keys
    /// further back than `window` are hidden (0: no window). Returns the output, like `q`, and the
    /// row log-sum-exp `[batch, heads, q_len]` the backward pass needs.
    fn fused_attention(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        q_start: usize,
        window: usize,
    ) -> (FloatTensor<Self>, FloatTensor<Self>);

    /// Gradients of [`fused_attention`](Self::fused_attention) for `q`, `k` and `v`, given the
    /// gradient of its output and what its forward pass returned.
    #[allow(clippy::too_many_arguments)]
    fn fused_attention_backward(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        output: FloatTensor<Self>,
        lse: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        q_start: usize,
        window: usize,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);
}
