//! Element-wise passes of the CPU backend's fused operations, written as one loop each and run on
//! every core. Burn's CPU element-wise operations run on one core, one operation per pass over
//! memory: a softmax is some six passes, SwiGLU's backward eight (BENCHMARKS.md, "A profile of the
//! CPU step"). The matmuls around these passes stay Burn's.

use burn::tensor::{Device, Tensor, TensorData};
use rayon::prelude::*;

/// Elements per task of the flat passes: large enough that scheduling costs nothing.
const FLAT_CHUNK: usize = 1 << 14;

/// Rewrites each row (the last axis) of `t` with `f`, given the row's index, on every core;
/// returns the tensor, its memory reused where no one else holds it, and what `f` returned for
/// each row.
pub(super) fn map_rows<const D: usize>(t: Tensor<D>, f: impl Fn(usize, &mut [f32]) -> f32 + Sync) -> (Tensor<D>, Vec<f32>) {
    let (shape, device) = (t.dims(), t.device());
    let mut data = t.into_data();
    let values = data.as_mut_slice::<f32>().expect("the fused operations compute in f32");
    let per_row = values.par_chunks_mut(shape[D - 1]).enumerate().map(|(row, values)| f(row, values)).collect();
    (Tensor::from_data(data, &device), per_row)
}

/// The values of an f32 tensor, on the host (no copy for a contiguous CPU tensor held once).
pub(super) fn host<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_into_vec::<f32>().expect("the fused operations compute in f32")
}

/// Per row of `logits` `[rows, vocab]`: the log-sum-exp and `lse − logit[target]`.
pub(super) fn cross_entropy_rows(logits: Tensor<2>, targets: &[u32]) -> (Vec<f32>, Vec<f32>) {
    let vocab = logits.dims()[1];
    let values = host(logits);
    values
        .par_chunks(vocab)
        .zip(targets.par_iter())
        .map(|(row, &target)| {
            let max = row.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
            let lse = max + row.iter().map(|&x| (x - max).exp()).sum::<f32>().ln();
            (lse, lse - row[target as usize])
        })
        .unzip()
}

/// `softmax(logits) − one_hot(targets)` from the rows' log-sum-exp, in the logits' memory.
pub(super) fn softmax_minus_one_hot(logits: Tensor<2>, lse: &[f32], targets: &[u32]) -> Tensor<2> {
    map_rows(logits, |row, values| {
        values.iter_mut().for_each(|x| *x = (*x - lse[row]).exp());
        values[targets[row] as usize] -= 1.0;
        0.0
    })
    .0
}

/// `silu(gate) · up` of two flat tensors.
pub(super) fn swiglu(gate: Tensor<1>, up: Tensor<1>) -> Tensor<1> {
    let device = gate.device();
    let (mut output, up) = (host(gate), host(up));
    output.par_chunks_mut(FLAT_CHUNK).zip(up.par_chunks(FLAT_CHUNK)).for_each(|(gate, up)| {
        for (g, u) in gate.iter_mut().zip(up) {
            *g = *g / (1.0 + (-*g).exp()) * u;
        }
    });
    flat(output, &device)
}

fn flat(values: Vec<f32>, device: &Device) -> Tensor<1> {
    let n = values.len();
    Tensor::from_data(TensorData::new(values, [n]), device)
}

/// The gradients of [`swiglu`] for `gate` and `up`, given the gradient of its output:
/// `d·u·s·(1 + g·(1 − s))` and `d·g·s`, with `s = sigmoid(g)`.
pub(super) fn swiglu_backward(gate: Tensor<1>, up: Tensor<1>, grad: Tensor<1>) -> (Tensor<1>, Tensor<1>) {
    let n = gate.dims()[0];
    let device = gate.device();
    let (gate, mut up, grad) = (host(gate), host(up), host(grad));
    let mut grad_gate = vec![0.0f32; n];
    grad_gate
        .par_chunks_mut(FLAT_CHUNK)
        .zip(up.par_chunks_mut(FLAT_CHUNK))
        .zip(gate.par_chunks(FLAT_CHUNK).zip(grad.par_chunks(FLAT_CHUNK)))
        .for_each(|((grad_gate, up), (gate, grad))| {
            for i in 0..gate.len() {
                let (g, d) = (gate[i], grad[i]);
                let s = 1.0 / (1.0 + (-g).exp());
                grad_gate[i] = d * up[i] * s * (1.0 + g * (1.0 - s));
                // The gradient for `up` takes `up`'s place once `up` is read.
                up[i] = d * g * s;
            }
        });
    (flat(grad_gate, &device), flat(up, &device))
}
