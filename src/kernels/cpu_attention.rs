//! The CPU's fused attention, in blocks of query rows: each block multiplies only the keys its
//! rows see (under the causal mask, a block of rows near the start sees a few keys, not all), so
//! the masked half of the scores is never computed, and the scores live in one block's scratch
//! memory, never as a `[heads × queries × keys]` tensor. The products are `gemm`'s
//! (`cpu_matmul.rs`), one head per core; between them one pass over each row of scores scales,
//! masks and exponentiates it, touching only the keys the row sees.
//!
//! Nothing of the forward pass but its inputs, output and row log-sum-exp is kept: the backward
//! pass recomputes the probabilities from the log-sum-exp (FlashAttention's backward, on blocks of
//! rows).

use std::mem::MaybeUninit;

use burn::backend::Flex;
use burn::backend::tensor::FloatTensor;
use burn::tensor::Tensor;
use gemm::Parallelism;
use rayon::prelude::*;

use super::cpu_matmul::{Destination, Matrix, Operand, from_values, multiply};
use super::cpu_passes::{exp, flex};

/// Query rows per block: the products stay large enough for `gemm`'s kernels, and under the causal
/// mask the blocks skip 3/8 of the scores at 256 tokens, 15/32 at 1,024.
const BLOCK: usize = 64;

/// The attention's shapes, and which keys each query sees.
#[derive(Clone, Copy)]
struct Geometry {
    batch: usize,
    heads: usize,
    kv_heads: usize,
    len: usize,
    total: usize,
    head_dim: usize,
    /// The absolute position of query 0.
    start: usize,
    window: Option<usize>,
}

/// A block of query rows and the keys its rows see between them.
struct Block {
    first: usize,
    rows: usize,
    keys_begin: usize,
    keys: usize,
}

impl Geometry {
    fn of(q: &FloatTensor<Flex>, k: &FloatTensor<Flex>, start: usize, window: Option<usize>) -> Self {
        let (q, k) = (q.layout().shape(), k.layout().shape());
        Self { batch: q[0], heads: q[1], len: q[2], head_dim: q[3], kv_heads: k[1], total: k[2], start, window }
    }

    /// The keys query `row` sees: `begin..end`.
    fn visible(&self, row: usize) -> (usize, usize) {
        let position = self.start + row;
        let begin = self.window.map_or(0, |w| (position + 1).saturating_sub(w));
        (begin.min(self.total), (position + 1).min(self.total))
    }

    fn blocks(&self) -> impl Iterator<Item = Block> + '_ {
        (0..self.len).step_by(BLOCK).map(|first| {
            let rows = BLOCK.min(self.len - first);
            let (keys_begin, _) = self.visible(first);
            let (_, keys_end) = self.visible(first + rows - 1);
            Block { first, rows, keys_begin, keys: keys_end.saturating_sub(keys_begin) }
        })
    }

    fn scale(&self) -> f32 {
        1.0 / (self.head_dim as f32).sqrt()
    }

    /// Query head `index` (over batch and heads) and its key/value head's index.
    fn kv_index(&self, index: usize) -> usize {
        let (batch, head) = (index / self.heads, index % self.heads);
        batch * self.kv_heads + head / (self.heads / self.kv_heads)
    }
}

/// Row `i` of a block's scores, `keys` wide from the block's first key, with what query
/// `block.first + i` does not see outside `begin..end` (relative to that first key).
fn seen(geometry: &Geometry, block: &Block, i: usize) -> (usize, usize) {
    let (begin, end) = geometry.visible(block.first + i);
    (begin - block.keys_begin, end.max(begin) - block.keys_begin)
}

/// The attention's output `[batch, heads, len, head_dim]` and row log-sum-exp
/// `[batch, heads, len]`.
pub(super) fn forward(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, start: usize, window: Option<usize>) -> (Tensor<4>, Tensor<3>) {
    let (q, k, v) = (flex(q), flex(k), flex(v));
    let g = Geometry::of(&q, &k, start, window);
    let (q_heads, k_heads, v_heads) = (Operand::of(&q), Operand::of(&k), Operand::of(&v));
    let (query_batches, kv_batches) = ([g.batch, g.heads], [g.batch, g.kv_heads]);
    let head_len = g.len * g.head_dim;
    let mut output = Vec::with_capacity(g.batch * g.heads * head_len);
    let mut lse = vec![0.0f32; g.batch * g.heads * g.len];
    let outputs = &mut output.spare_capacity_mut()[..g.batch * g.heads * head_len];
    outputs.par_chunks_mut(head_len.max(1)).zip(lse.par_chunks_mut(g.len.max(1))).enumerate().for_each(|(index, (out, lse))| {
        let q = q_heads.matrix(index, &query_batches);
        let (k, v) = (k_heads.matrix(g.kv_index(index), &kv_batches), v_heads.matrix(g.kv_index(index), &kv_batches));
        let mut scores = vec![0.0f32; BLOCK * g.total];
        for block in g.blocks() {
            let s = &mut scores[..block.rows * block.keys];
            let (q, k, v) = (q.rows(block.first, block.rows), k.rows(block.keys_begin, block.keys), v.rows(block.keys_begin, block.keys));
            multiply(Destination::Overwrite(s), 0, block.keys, q, k.transposed(), g.scale(), Parallelism::None);
            for (i, row) in s.chunks_mut(block.keys.max(1)).enumerate() {
                let (begin, end) = seen(&g, &block, i);
                let max = row[begin..end].iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
                row[begin..end].iter_mut().for_each(|x| *x = exp(*x - max));
                let sum: f32 = row[begin..end].iter().sum();
                let inverse = 1.0 / sum;
                row[begin..end].iter_mut().for_each(|x| *x *= inverse);
                row[..begin].fill(0.0);
                row[end..].fill(0.0);
                lse[block.first + i] = max + sum.ln();
            }
            let probs = Matrix::row_major(s, block.rows, block.keys);
            let out = Destination::Fresh(&mut *out);
            multiply(out, block.first * g.head_dim, g.head_dim, probs, v, 1.0, Parallelism::None);
        }
    });
    // SAFETY: the blocks cover every query row of every head, and each wrote its rows whole.
    unsafe { output.set_len(g.batch * g.heads * head_len) };
    let output = from_values(output, vec![g.batch, g.heads, g.len, g.head_dim]);
    let lse = from_values(lse, vec![g.batch, g.heads, g.len]);
    (Tensor::from_primitive::<Flex>(output), Tensor::from_primitive::<Flex>(lse))
}

/// The gradients for `q`, `k` and `v`, from the output's gradient and what [`forward`] returned.
/// Each query head adds its share of `k`'s and `v`'s gradients into memory of its own, summed over
/// the query heads that share a key/value head at the end.
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
    let (q, k, v, output, lse, grad) = (flex(q), flex(k), flex(v), flex(output), flex(lse), flex(grad));
    let g = Geometry::of(&q, &k, start, window);
    let scale = g.scale();
    let (q_heads, k_heads, v_heads) = (Operand::of(&q), Operand::of(&k), Operand::of(&v));
    let (output_heads, grad_heads, lse_heads) = (Operand::of(&output), Operand::of(&grad), Operand::of(&lse));
    let (query_batches, kv_batches) = ([g.batch, g.heads], [g.batch, g.kv_heads]);
    let (head_len, key_len) = (g.len * g.head_dim, g.total * g.head_dim);

    let mut grad_q = Vec::with_capacity(g.batch * g.heads * head_len);
    let mut grad_k_shares = vec![0.0f32; g.batch * g.heads * key_len];
    let mut grad_v_shares = vec![0.0f32; g.batch * g.heads * key_len];
    let grad_q_heads = &mut grad_q.spare_capacity_mut()[..g.batch * g.heads * head_len];
    grad_q_heads
        .par_chunks_mut(head_len.max(1))
        .zip(grad_k_shares.par_chunks_mut(key_len.max(1)).zip(grad_v_shares.par_chunks_mut(key_len.max(1))))
        .enumerate()
        .for_each(|(index, (grad_q, (grad_k, grad_v)))| {
            let (q, output, grad) = (
                q_heads.matrix(index, &query_batches),
                output_heads.matrix(index, &query_batches),
                grad_heads.matrix(index, &query_batches),
            );
            let (k, v) = (k_heads.matrix(g.kv_index(index), &kv_batches), v_heads.matrix(g.kv_index(index), &kv_batches));
            // `lse` is `[batch, heads, len]`: batch `index / heads`'s matrix, row `index % heads`.
            let lse: Vec<f32> = lse_heads.matrix(index / g.heads, &[g.batch]).row(index % g.heads).collect();
            let (mut probs, mut grad_scores) = (vec![0.0f32; BLOCK * g.total], vec![0.0f32; BLOCK * g.total]);
            for block in g.blocks() {
                let n = block.rows * block.keys;
                let (p, ds) = (&mut probs[..n], &mut grad_scores[..n]);
                let (q, output, grad) =
                    (q.rows(block.first, block.rows), output.rows(block.first, block.rows), grad.rows(block.first, block.rows));
                let (k, v) = (k.rows(block.keys_begin, block.keys), v.rows(block.keys_begin, block.keys));
                // P from the log-sum-exp, and dS = P ∘ (dO·Vᵀ − rowsum(dO ∘ O)).
                multiply(Destination::Overwrite(p), 0, block.keys, q, k.transposed(), scale, Parallelism::None);
                multiply(Destination::Overwrite(ds), 0, block.keys, grad, v.transposed(), 1.0, Parallelism::None);
                for (i, (p, ds)) in p.chunks_mut(block.keys.max(1)).zip(ds.chunks_mut(block.keys.max(1))).enumerate() {
                    let (begin, end) = seen(&g, &block, i);
                    let row_lse = lse[block.first + i];
                    let row_dot: f32 = grad.row(i).zip(output.row(i)).map(|(d, o)| d * o).sum();
                    for (p, ds) in p[begin..end].iter_mut().zip(&mut ds[begin..end]) {
                        *p = exp(*p - row_lse);
                        *ds = *p * (*ds - row_dot);
                    }
                    p[..begin].fill(0.0);
                    p[end..].fill(0.0);
                    ds[..begin].fill(0.0);
                    ds[end..].fill(0.0);
                }
                let (p, ds) = (Matrix::row_major(p, block.rows, block.keys), Matrix::row_major(ds, block.rows, block.keys));
                let rows_at = |first: usize| first * g.head_dim;
                multiply(Destination::Fresh(&mut *grad_q), rows_at(block.first), g.head_dim, ds, k, scale, Parallelism::None);
                multiply(
                    Destination::Accumulate(&mut *grad_k),
                    rows_at(block.keys_begin),
                    g.head_dim,
                    ds.transposed(),
                    q,
                    scale,
                    Parallelism::None,
                );
                multiply(
                    Destination::Accumulate(&mut *grad_v),
                    rows_at(block.keys_begin),
                    g.head_dim,
                    p.transposed(),
                    grad,
                    1.0,
                    Parallelism::None,
                );
            }
        });
    // SAFETY: the blocks cover every query row of every head, and each wrote its rows whole.
    unsafe { grad_q.set_len(g.batch * g.heads * head_len) };
    let grad_q = from_values(grad_q, vec![g.batch, g.heads, g.len, g.head_dim]);
    let kv_shape = vec![g.batch, g.kv_heads, g.total, g.head_dim];
    let (grad_k, grad_v) = (sum_shares(grad_k_shares, &g), sum_shares(grad_v_shares, &g));
    let tensor = |values, shape| Tensor::<4>::from_primitive::<Flex>(from_values(values, shape));
    (Tensor::from_primitive::<Flex>(grad_q), tensor(grad_k, kv_shape.clone()), tensor(grad_v, kv_shape))
}

/// The key/value heads' gradients from the shares of the query heads that use each
/// (`[batch, heads, total, head_dim]`, consecutive heads sharing one): summed, or as they are when
/// each query head has a key/value head of its own.
fn sum_shares(shares: Vec<f32>, g: &Geometry) -> Vec<f32> {
    let group = g.heads / g.kv_heads;
    if group == 1 {
        return shares;
    }
    let key_len = g.total * g.head_dim;
    let mut sums: Vec<f32> = Vec::with_capacity(g.batch * g.kv_heads * key_len);
    let out: &mut [MaybeUninit<f32>] = &mut sums.spare_capacity_mut()[..g.batch * g.kv_heads * key_len];
    out.par_chunks_mut(key_len.max(1)).zip(shares.par_chunks(group * key_len.max(1))).for_each(|(sum, shares)| {
        for (j, sum) in sum.iter_mut().enumerate() {
            sum.write((0..group).map(|h| shares[h * key_len + j]).sum());
        }
    });
    // SAFETY: every element of every key/value head was written.
    unsafe { sums.set_len(g.batch * g.kv_heads * key_len) };
    sums
}
