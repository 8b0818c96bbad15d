//! Next-token cross-entropy over the positions that carry a target.
//!
//! Only those rows go through the language-model head, in chunks small enough that no logits
//! buffer exceeds the device's buffer limit (128 MiB on lavapipe and many real adapters); the
//! whole `[tokens, vocab]` matrix is never formed.

use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::data::{Batch, IGNORE, LabelTarget};
use crate::kernels;
use crate::model::{Head, HeadWeight};

/// Rows of logits computed at once, from the buffer limit and a memory budget.
pub fn chunk_rows(vocab: usize, max_buffer_bytes: u64) -> usize {
    const BUDGET: u64 = 64 << 20;
    let bytes_per_row = (vocab * 4) as u64;
    (max_buffer_bytes.min(BUDGET) / bytes_per_row).max(1) as usize
}

/// The positions with a target and those targets, ready for [`cross_entropy_sum`].
pub struct Targets {
    pub rows: Tensor<1, Int>,
    pub ids: Vec<i64>,
}

impl Targets {
    pub fn from_batch(batch: &Batch, device: &Device) -> Option<Self> {
        let (rows, ids): (Vec<i64>, Vec<i64>) =
            batch.targets.iter().enumerate().filter(|(_, t)| **t != IGNORE).map(|(i, t)| (i as i64, *t)).unzip();
        if rows.is_empty() {
            return None;
        }
        let n = rows.len();
        Some(Self { rows: Tensor::from_data(TensorData::new(rows, [n]), device), ids })
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

/// Sum over targets of `-log p(target)`, and for evaluation the number of targets the model
/// ranks first. `hidden` is `[batch, len, dim]`, `head` `[dim, vocab]`.
pub struct LossSum {
    pub sum: Tensor<1>,
    pub correct: Option<Tensor<1, Int>>,
}

///
/// With `fused`, the loss goes through [`kernels::cross_entropy`], which under autodiff computes
/// its gradients chunk by chunk instead of keeping every chunk's logits for the backward pass.
pub fn cross_entropy_sum(hidden: Tensor<3>, head: Head, targets: &Targets, chunk: usize, count_correct: bool, fused: bool) -> LossSum {
    let [batch, len, dim] = hidden.dims();
    let device = hidden.device();
    let selected = hidden.reshape([batch * len, dim]).select(0, targets.rows.clone());
    let fused = kernels::fused_on(fused, &device);
    // The fused loss knows no soft-capped logits (Gemma 2): those take the tensor-op path, which
    // keeps each chunk's logits for the backward pass.
    if fused && !count_correct && head.softcap.is_none() {
        let ids: Vec<u32> = targets.ids.iter().map(|&t| t as u32).collect();
        match &head.weight {
            HeadWeight::Dense(weight) => {
                return LossSum { sum: kernels::cross_entropy(selected, weight.clone(), &ids, chunk), correct: None };
            }
            HeadWeight::Packed(weight) => {
                return LossSum { sum: kernels::cross_entropy_packed(selected, weight, &ids, chunk), correct: None };
            }
            HeadWeight::Blocks(blocks) => {
                return LossSum { sum: kernels::cross_entropy_blocks(selected, blocks, &ids, chunk), correct: None };
            }
        }
    }
    let mut sum: Option<Tensor<1>> = None;
    let mut correct: Option<Tensor<1, Int>> = None;
    let n = targets.len();
    let mut start = 0;
    while start < n {
        let rows = chunk.min(n - start);
        let h = selected.clone().narrow(0, start, rows);
        let ids = &targets.ids[start..start + rows];
        let target = Tensor::<2, Int>::from_data(TensorData::new(ids.to_vec(), [rows, 1]), &device);
        let logits = head.logits(h, fused);
        if count_correct {
            let hits = logits.clone().argmax(1).equal(target.clone()).int().sum();
            correct = Some(match correct.take() {
                Some(c) => c + hits,
                None => hits,
            });
        }
        let nll = log_softmax(logits, 1).gather(1, target).sum().neg();
        sum = Some(match sum.take() {
            Some(s) => s + nll,
            None => nll,
        });
        start += rows;
    }
    LossSum { sum: sum.unwrap_or_else(|| Tensor::zeros([1], &device)), correct }
}

/// The flat positions `[batch]` a classifier reads in a labelled batch.
pub fn label_positions(batch: &Batch, device: &Device) -> Tensor<1, Int> {
    let positions: Vec<i64> = batch.labels.iter().map(|l| l.position as i64).collect();
    let n = positions.len();
    Tensor::from_data(TensorData::new(positions, [n]), device)
}

/// Sum over labelled sequences of `-w[y] · log p(y)` from class logits `[batch, classes]`, with
/// `w` the class weights (1 without them): PyTorch's weighted cross-entropy before it divides by
/// the sum of the weights.
pub fn classification_loss_sum(logits: Tensor<2>, labels: &[LabelTarget], class_weights: Option<&[f32]>) -> Tensor<1> {
    let device = logits.device();
    let n = labels.len();
    let target = Tensor::<2, Int>::from_data(TensorData::new(labels.iter().map(|l| l.label as i64).collect::<Vec<_>>(), [n, 1]), &device);
    let nll = log_softmax(logits, 1).gather(1, target).neg();
    match class_weights {
        Some(weights) => {
            let w: Vec<f32> = labels.iter().map(|l| weights.get(l.label as usize).copied().unwrap_or(1.0)).collect();
            (nll * Tensor::<2>::from_data(TensorData::new(w, [n, 1]), &device)).sum()
        }
        None => nll.sum(),
    }
}
