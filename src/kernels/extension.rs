//! The one backend-extension trait behind every fused kernel: implemented for Burn's CubeCL
//! backend with WGSL (`launch.rs`), for the CPU backend with plain tensor operations
//! (`fallback.rs`), and for autodiff with hand-written backward passes (`autodiff.rs`).

use burn::backend::backend_extension;
use burn::backend::tensor::{FloatTensor, IntTensor};

#[backend_extension(Cube, Flex, Autodiff)]
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

    /// Per row of `logits` `[rows, vocab]`: the log-sum-exp and `−log softmax[target]`.
    fn cross_entropy_rows(logits: FloatTensor<Self>, targets: Vec<u32>) -> (FloatTensor<Self>, FloatTensor<Self>);

    /// `softmax(logits) − one_hot(targets)`, the gradient of the summed loss for the logits,
    /// given the row log-sum-exp. May reuse the memory of `logits`.
    fn cross_entropy_grad(logits: FloatTensor<Self>, lse: FloatTensor<Self>, targets: Vec<u32>) -> FloatTensor<Self>;

    /// Σ over rows of `−log softmax(hidden · head)[target]` with `hidden` `[rows, dim]` and `head`
    /// `[dim, vocab]`, `chunk` rows of logits at a time. Returns `[1]`.
    fn fused_cross_entropy(hidden: FloatTensor<Self>, head: FloatTensor<Self>, targets: Vec<u32>, chunk: usize) -> FloatTensor<Self>;

    /// [`fused_cross_entropy`](Self::fused_cross_entropy) through a frozen head `[vocab, dim]`
    /// packed in blocks (`values`, `params`; `layout` is rows, cols, bits, as for
    /// [`packed_matmul`](Self::packed_matmul)); differentiable with respect to `hidden` only.
    fn fused_cross_entropy_packed(
        hidden: FloatTensor<Self>,
        values: IntTensor<Self>,
        params: IntTensor<Self>,
        layout: (usize, usize, usize),
        targets: Vec<u32>,
        chunk: usize,
    ) -> FloatTensor<Self>;

    /// `a · b` for `a` `[m, k]` and `b` `[k, n]` (either may be a transposed view); `b` may be
    /// f16, the result is f32 like `a`.
    fn fused_matmul(a: FloatTensor<Self>, b: FloatTensor<Self>) -> FloatTensor<Self>;

    /// `base + scale·[down₀·b₀ | down₁·b₁ | …]`, LoRA's updates of projections side by side
    /// (see `lora_update.rs`): block `j` of `blocks` (its first column in `base` `[m, n]`, its
    /// width) adds the product of `down`'s `r` columns from `j·r` by the next `width` columns of `b`
    /// `[r, Σ widths]`. May reuse the memory of `base`.
    fn fused_lora_update(
        base: FloatTensor<Self>,
        down: FloatTensor<Self>,
        b: FloatTensor<Self>,
        scale: f32,
        blocks: Vec<(usize, usize)>,
    ) -> FloatTensor<Self>;

    /// Gradients of [`fused_lora_update`](Self::fused_lora_update) for `down` and `b`, given the
    /// gradient of its output (which is also `base`'s).
    fn fused_lora_update_backward(
        down: FloatTensor<Self>,
        b: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        scale: f32,
        blocks: Vec<(usize, usize)>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>);

    /// `x · Wᵀ` for `x` `[m, cols]` (f32) and a frozen `W` `[rows, cols]` packed in blocks of
    /// `bits`-bit numbers (`values`, `params`: see `model::packed`). Returns `[m, rows]`, f32.
    fn packed_matmul(
        x: FloatTensor<Self>,
        values: IntTensor<Self>,
        params: IntTensor<Self>,
        rows: usize,
        cols: usize,
        bits: usize,
    ) -> FloatTensor<Self>;

    /// `grad · W` for `grad` `[m, rows]`: the gradient of [`packed_matmul`](Self::packed_matmul)
    /// for `x`. Returns `[m, cols]`.
    fn packed_matmul_input_grad(
        grad: FloatTensor<Self>,
        values: IntTensor<Self>,
        params: IntTensor<Self>,
        rows: usize,
        cols: usize,
        bits: usize,
    ) -> FloatTensor<Self>;

    /// `product` `[rows, Σ widths]` cut into `[rows, width]` pieces by columns, left to right
    /// (views). Under autodiff the pieces' gradients are joined into one for `product` (see
    /// `split.rs`).
    fn split_columns(product: FloatTensor<Self>, widths: Vec<usize>) -> Vec<FloatTensor<Self>>;

    /// RMSNorm of each row of `x` `[rows, dim]`: `x · r · weight` with `r = 1/√(mean(x²) + eps)`
    /// and `weight` `[dim]` (Gemma's `1 + w` already added). Returns the output and each row's `r`
    /// `[rows]`, which the backward pass needs.
    fn fused_rms_norm(x: FloatTensor<Self>, weight: FloatTensor<Self>, eps: f32) -> (FloatTensor<Self>, FloatTensor<Self>);

    /// The gradient of [`fused_rms_norm`](Self::fused_rms_norm) for `x`, given the gradient `g` of
    /// its output: `r·(w∘g) − x·r³·mean(x∘w∘g)` per row.
    fn fused_rms_norm_backward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        inv_rms: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> FloatTensor<Self>;

    /// `x` `[batch, heads, len, head_dim]` (any strides) rotated by `cos`, `sin` `[1 or batch, len,
    /// head_dim]`: `x·cos + rotate_half(x)·sin`, `rotate_half(x) = [−x₂, x₁]` of the two halves;
    /// `inverse`, the opposite rotation (`sin` negated), which is the backward pass because the
    /// halves of each table row are alike. Returns a contiguous tensor like `x`.
    fn fused_rotary(x: FloatTensor<Self>, cos: FloatTensor<Self>, sin: FloatTensor<Self>, inverse: bool) -> FloatTensor<Self>;

    /// `silu(gate) · up` of two flat tensors `[n]`.
    fn fused_swiglu(gate: FloatTensor<Self>, up: FloatTensor<Self>) -> FloatTensor<Self>;

    /// Gradients of [`fused_swiglu`](Self::fused_swiglu) for `gate` and `up`, given the gradient
    /// of its output.
    fn fused_swiglu_backward(
        gate: FloatTensor<Self>,
        up: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>);

    /// The flat `x` with each element kept (scaled by `1 / keep`) where a hash of its index and
    /// `seed` (two numbers, their bits the seed) falls below `keep`, else zeroed. Linear in `x`,
    /// and its own backward pass with the same seed (see `dropout.rs`).
    fn fused_dropout(x: FloatTensor<Self>, seed: FloatTensor<Self>, keep: f32) -> FloatTensor<Self>;

    /// `dropout(x)·a` (see [`fused_dropout`](Self::fused_dropout)) for `x` `[m, k]`, `a` `[k, n]`.
    fn fused_dropout_matmul(x: FloatTensor<Self>, seed: FloatTensor<Self>, a: FloatTensor<Self>, keep: f32) -> FloatTensor<Self>;

    /// Gradients of [`fused_dropout_matmul`](Self::fused_dropout_matmul) for `x` and `a`, given
    /// the gradient of its output: `x` dropped out again for `a`'s, the same mask on `x`'s.
    fn fused_dropout_matmul_backward(
        x: FloatTensor<Self>,
        seed: FloatTensor<Self>,
        a: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        keep: f32,
    ) -> (FloatTensor<Self>, FloatTensor<Self>);

    /// `partials` with `Σ t²` of the flat `t` written into its `slots(n)` entries from `slot` on
    /// (see `squared_norm.rs`: summed, they are the sum; the CPU writes it whole into the first).
    /// Not differentiable.
    fn fused_add_squares(t: FloatTensor<Self>, partials: FloatTensor<Self>, slot: usize) -> FloatTensor<Self>;

    /// One AdamW step of a flat parameter: returns the new parameter and moments.
    /// `coefficients`: lr, β1, β2, ε, decay, 1 − β1ᵗ, 1 − β2ᵗ, gradient scale.
    fn fused_adamw(
        param: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        m: FloatTensor<Self>,
        v: FloatTensor<Self>,
        coefficients: [f32; 8],
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);
}
