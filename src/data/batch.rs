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
/// where that token is trained, [`IGNORE`] elsewhere.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Batch {
    pub input_ids: Vec<i64>,
    pub targets: Vec<i64>,
    pub batch_size: usize,
    pub len: usize,
}

impl Batch {
    pub fn new(examples: &[&Example], pad_id: u32) -> Self {
        let longest = examples.iter().map(|e| e.ids.len()).max().unwrap_or(1).max(1);
        let len = longest.div_ceil(LENGTH_MULTIPLE) * LENGTH_MULTIPLE;
        let mut input_ids = vec![pad_id as i64; examples.len() * len];
        let mut targets = vec![IGNORE; examples.len() * len];
        for (row, example) in examples.iter().enumerate() {
            let base = row * len;
            for (t, &id) in example.ids.iter().enumerate() {
                input_ids[base + t] = id as i64;
                if t > 0 && example.trainable[t] {
                    targets[base + t - 1] = id as i64;
                }
            }
        }
        Self { input_ids, targets, batch_size: examples.len(), len }
    }

    /// Number of positions that carry a target.
    pub fn target_count(&self) -> usize {
        self.targets.iter().filter(|t| **t != IGNORE).count()
    }

    /// Number of real (non-padding) tokens, for throughput figures.
    pub fn token_count(&self, examples: &[&Example]) -> usize {
        examples.iter().map(|e| e.ids.len()).sum()
    }
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
        Example { ids: ids.to_vec(), trainable: trainable.to_vec(), origin: Origin { file: Arc::from(Path::new("d.jsonl")), line: 1 } }
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
    fn epoch_order_is_a_seeded_permutation() {
        let a = epoch_order(50, 7, 0);
        assert_eq!(a, epoch_order(50, 7, 0));
        assert_ne!(a, epoch_order(50, 7, 1));
        let mut sorted = a.clone();
        sorted.sort();
        assert_eq!(sorted, (0..50).collect::<Vec<_>>());
    }
}
