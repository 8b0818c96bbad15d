//! The CPU's fused attention: its matmuls (Q·Kᵀ, P·V and those of the backward pass) are `gemm`'s
//! (`cpu_matmul.rs`), on every core, and between them one pass over each row of scores, in place
//! and on every core (`cpu_passes::map_rows`), scales, masks and exponentiates it, touching only
//! the keys the row sees. Burn's element-wise operations would make some ten passes over the
//! `[queries × keys]` scores on one core, and send the masked half through libm's slow underflow
//! path.
//!
//! Nothing of the forward pass but its inputs, output and row log-sum-exp is kept: the backward
//! pass recomputes the probabilities from the log-sum-exp (FlashAttention's backward, unblocked).

use burn::tensor::{Tensor, TensorData};

use super::cpu_matmul::product;
use super::cpu_passes::{exp, host, map_rows};

/// The query heads that share a key/value head, stacked along the sequence axis:
/// `[batch, kv_heads, rep·len, head_dim]`, so that keys and values are never repeated.
fn stacked(t: Tensor<4>, kv_heads: usize) -> Tensor<4> {
    let [batch, heads, len, head_dim] = t.dims();
    t.reshape([batch, kv_heads, heads / kv_heads * len, head_dim])
}

/// Where the scores' rows are: each `total` long, the `rep·len` rows of a key/value head in a
/// block, row `r` of a block being query `r % len`, at absolute position `start + r % len`.
#[derive(Clone, Copy)]
struct Rows {
    len: usize,
    total: usize,
    start: usize,
    window: Option<usize>,
}

impl Rows {
    /// The keys row `row` (counted over all blocks) sees: `begin..end`.
    fn visible(&self, row: usize) -> (usize, usize) {
        let position = self.start + row % self.len;
        let begin = self.window.map_or(0, |w| (position + 1).saturating_sub(w));
        (begin, (position + 1).min(self.total))
    }
}

/// The attention's output `[batch, heads, len, head_dim]` and row log-sum-exp
/// `[batch, heads, len]`.
pub(super) fn forward(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, start: usize, window: Option<usize>) -> (Tensor<4>, Tensor<3>) {
    let [batch, heads, len, head_dim] = q.dims();
    let [_, kv_heads, total, _] = k.dims();
    let rows = Rows { len, total, start, window };
    let scale = 1.0 / (head_dim as f32).sqrt();
    let device = q.device();
    let scores = product(stacked(q, kv_heads), k.swap_dims(2, 3));
    let (probs, lse) = map_rows(scores, |row, s| {
        let (begin, end) = rows.visible(row);
        let mut max = f32::NEG_INFINITY;
        for x in &mut s[begin..end] {
            *x *= scale;
            max = max.max(*x);
        }
        s[begin..end].iter_mut().for_each(|x| *x = exp(*x - max));
        let sum: f32 = s[begin..end].iter().sum();
        let inverse = 1.0 / sum;
        s[begin..end].iter_mut().for_each(|x| *x *= inverse);
        s[..begin].fill(0.0);
        s[end..].fill(0.0);
        max + sum.ln()
    });
    let output = product(probs, v).reshape([batch, heads, len, head_dim]);
    let lse = Tensor::from_data(TensorData::new(lse, [batch, heads, len]), &device);
    (output, lse)
}

/// The gradients for `q`, `k` and `v`, from the output's gradient and what [`forward`] returned.
#[allow(clippy::too_many_arguments)]
pub(super) fn backward(
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    output: Tensor<4>,
    lse: Tensor<3>,
    grad: Tensor<4>,
    start: usize,
    window: Option<usize>,
) -> (Tensor<4>, Tensor<4>, Tensor<4>) {
    let [batch, heads, len, head_dim] = q.dims();
    let [_, kv_heads, total, _] = k.dims();
    let rows = Rows { len, total, start, window };
    let scale = 1.0 / (head_dim as f32).sqrt();
    let (q, grad, output) = (stacked(q, kv_heads), stacked(grad, kv_heads), stacked(output, kv_heads));

    let lse = host(lse);
    let lse = lse.values();
    let (probs, _) = map_rows(product(q.clone(), k.clone().swap_dims(2, 3)), |row, s| {
        let (begin, end) = rows.visible(row);
        for x in &mut s[begin..end] {
            *x = exp(*x * scale - lse[row]);
        }
        s[..begin].fill(0.0);
        s[end..].fill(0.0);
        0.0
    });
    let grad_v = product(probs.clone().swap_dims(2, 3), grad.clone());

    // dS = P ∘ (dO·Vᵀ − rowsum(dO ∘ O)), written over dO·Vᵀ.
    let (row_dot, probs) = (host((grad.clone() * output).sum_dim(3)), host(probs));
    let (row_dot, probs) = (row_dot.values(), probs.values());
    let (grad_scores, _) = map_rows(product(grad, v.swap_dims(2, 3)), |row, ds| {
        let (begin, end) = rows.visible(row);
        let p = &probs[row * total..(row + 1) * total];
        for j in begin..end {
            ds[j] = p[j] * (ds[j] - row_dot[row]);
        }
        ds[..begin].fill(0.0);
        ds[end..].fill(0.0);
        0.0
    });
    let grad_q = product(grad_scores.clone(), k).mul_scalar(scale).reshape([batch, heads, len, head_dim]);
    let grad_k = product(grad_scores.swap_dims(2, 3), q).mul_scalar(scale);
    (grad_q, grad_k, grad_v)
}
