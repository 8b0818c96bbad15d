//! Batches of examples as the model consumes them: padded ids and shifted targets.

use rand::SeedableRng;
use rand::seq::SliceRandom;

use super::dataset::Example;

/// The target value of positions that are not trained (the prompt, padding, the last token).
pub const IGNORE: i64 = -100;

/// Sequence lengths are padded up to a multiple of this, so the GPU sees a few shapes rather than
/// one per batch: every new shape compiles its kernels again.
pub const LENGTH_MULTIPLE: usize = 32;

/// `input_ids` and `targets`, both `[batch, len]` row-major; `targets[t]` is the token at `t + 1`
/// where that token is trained, [`IGNORE`] elsewhere. A classification batch has no token
/// targets but one [`LabelTarget`] per sequence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Batch {
    pub input_ids: Vec<i64>,
    pub targets: Vec<i64>,
    pub batch_size: usize,
    pub len: usize,
    pub labels: Vec<LabelTarget>,
}

/// The class of one sequence, and the flat index (`row * len + t`) of the position the
/// classification head reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LabelTarget {
    pub position: usize,
    pub label: u32,
}

impl Batch {
    pub fn new(examples: &[&Example], pad_id: u32) -> Self {
        let longest = examples.iter().map(|e| e.ids.len()).max().unwrap_or(1).max(1);
        let len = longest.div_ceil(LENGTH_MULTIPLE) * LENGTH_MULTIPLE;
        let mut input_ids = vec![pad_id as i64; examples.len() * len];
        let mut targets = vec![IGNORE; examples.len() * len];
        let mut labels = Vec::new();
        for (row, example) in examples.iter().enumerate() {
            let base = row * len;
            for (t, &id) in example.ids.iter().enumerate() {
                input_ids[base + t] = id as i64;
                if t > 0 && example.trainable[t] {
                    targets[base + t - 1] = id as i64;
                }
            }
            if let Some(label) = example.label {
                let position = base + pooled_position(&input_ids[base..base + len], pad_id as i64);
                labels.push(LabelTarget { position, label });
            }
        }
        Self { input_ids, targets, batch_size: examples.len(), len, labels }
    }

    /// Number of positions that carry a target (for a classification batch, of labelled
    /// sequences).
    pub fn target_count(&self) -> usize {
        if !self.labels.is_empty() {
            return self.labels.len();
        }
        self.targets.iter().filter(|t| **t != IGNORE).count()
    }

    /// What this batch adds to the loss's denominator: its targets, or with class weights the
    /// sum of its labels' weights (as PyTorch's weighted cross-entropy divides).
    pub fn loss_weight(&self, class_weights: Option<&[f32]>) -> f64 {
        match class_weights {
            Some(weights) if !self.labels.is_empty() => {
                self.labels.iter().map(|l| weights.get(l.label as usize).copied().unwrap_or(1.0) as f64).sum()
            }
            _ => self.target_count() as f64,
        }
    }

    /// Number of real (non-padding) tokens, for throughput figures.
    pub fn token_count(&self, examples: &[&Example]) -> usize {
        examples.iter().map(|e| e.ids.len()).sum()
    }
}

/// The position a sequence classifier reads in one row of ids: the rightmost that is not
/// padding, whether the row is padded on the right or the left, exactly as transformers'
/// `*ForSequenceClassification` chooses it (0 when the row is all padding).
pub fn pooled_position(row: &[i64], pad_id: i64) -> usize {
    row.iter().rposition(|&id| id != pad_id).unwrap_or(0)
}

/// The order examples are visited in during one epoch: a permutation seeded by `seed` and the
/// epoch, so a resumed run sees exactly what the uninterrupted run would have.
pub fn epoch_order(len: usize, seed: u64, epoch: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..len).collect();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed.wrapping_add((epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)));
    order.shuffle(&mut rng);
    order
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::dataset::Origin;
    use std::path::Path;
    use std::sync::Arc;

    fn example(ids: &[u32], trainable: &[bool]) -> Example {
        Example {
            ids: ids.to_vec(),
            trainable: trainable.to_vec(),
            label: None,
            origin: Origin { file: Arc::from(Path::new("d.jsonl")), line: 1 },
        }
    }

    #[test]
    fn targets_are_shifted_and_masked() {
        let a = example(&[5, 6, 7, 8], &[false, false, true, true]);
        let b = example(&[9, 10], &[false, true]);
        let batch = Batch::new(&[&a, &b], 0);
        assert_eq!(batch.len, LENGTH_MULTIPLE);
        assert_eq!(&batch.input_ids[..4], &[5, 6, 7, 8]);
        assert_eq!(&batch.targets[..4], &[IGNORE, 7, 8, IGNORE]);
        let row = LENGTH_MULTIPLE;
        assert_eq!(&batch.input_ids[row..row + 3], &[9, 10, 0]);
        assert_eq!(&batch.targets[row..row + 2], &[10, IGNORE]);
        assert_eq!(batch.target_count(), 3);
    }

    #[test]
    fn a_classifier_reads_the_last_token_that_is_not_padding() {
        assert_eq!(pooled_position(&[5, 6, 7, 0, 0], 0), 2);
        assert_eq!(pooled_position(&[0, 0, 5, 6, 7], 0), 4);
        assert_eq!(pooled_position(&[0, 0], 0), 0);
        let mut a = example(&[5, 6, 7], &[false; 3]);
        a.label = Some(2);
        let mut b = example(&[9], &[false]);
        b.label = Some(0);
        let batch = Batch::new(&[&a, &b], 0);
        assert_eq!(batch.labels, [LabelTarget { position: 2, label: 2 }, LabelTarget { position: LENGTH_MULTIPLE, label: 0 }]);
        assert_eq!(batch.target_count(), 2);
        assert_eq!(batch.loss_weight(Some(&[0.5, 1.0, 3.0])), 3.5);
    }

    #[test]
    fn epoch_order_is_a_seeded_permutation() {
        let a = epoch_order(50, 7, 0);
        assert_eq!(a, epoch_order(50, 7, 0));
        assert_ne!(a, epoch_order(50, 7, 1));
        let mut sorted = a.clone();
        sorted.sort();
        assert_eq!(sorted, (0..50).collect::<Vec<_>>());
    }
}
