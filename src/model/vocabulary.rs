//! Vocabulary tables larger than one storage binding: the embedding looked up on the host, the
//! output projection in blocks of whole rows that each fit one binding.
//!
//! A GPU binds at most `max_storage_buffer_binding_size` bytes of a buffer to one shader (128 MiB
//! by WebGPU's default, and on lavapipe), and Burn keeps each tensor in one buffer; Qwen2.5-0.5B's
//! table is 544 MB in f32, Llama 3.2 1B's 1.05 GB. A frozen table never needs to be one tensor:
//! the lookup gathers a batch's rows on the host, and the head's logits are the blocks' logits
//! side by side (the logits themselves are computed a chunk of rows at a time, see
//! `train::loss::chunk_rows`).

use burn::module::Module;
use burn::tensor::{DType, Device, Tensor, TensorData};

use super::packed::HostPacked;
use crate::kernels;

/// A frozen `[rows, cols]` matrix in blocks of whole rows, top to bottom, each within a binding.
#[derive(Module, Debug)]
pub struct RowBlocks {
    pub blocks: Vec<Tensor<2>>,
}

impl RowBlocks {
    /// `values` (row-major `[rows, cols]`) in `dtype`, in blocks of at most `max_bytes` each.
    pub fn new(values: &[f32], rows: usize, cols: usize, dtype: DType, max_bytes: u64, device: &Device) -> Self {
        let per_block = rows_per_block(cols, dtype, max_bytes);
        let blocks = (0..rows)
            .step_by(per_block)
            .map(|first| {
                let count = per_block.min(rows - first);
                let data = TensorData::new(values[first * cols..(first + count) * cols].to_vec(), [count, cols]);
                Tensor::from_data(data, (device, dtype))
            })
            .collect();
        Self { blocks }
    }

    /// Each block transposed (`[cols, rows_i]`, views): the factors of `x · Wᵀ`.
    pub fn transposed(&self) -> Vec<Tensor<2>> {
        self.blocks.iter().map(|b| b.clone().transpose()).collect()
    }
}

/// Rows of `cols` values of `dtype` that fit in `max_bytes` (at least one).
pub fn rows_per_block(cols: usize, dtype: DType, max_bytes: u64) -> usize {
    (max_bytes / (cols * dtype.size()).max(1) as u64).max(1) as usize
}

/// Whether a `[rows, cols]` matrix of `dtype` is more than one binding of `max_bytes` holds.
pub fn exceeds_binding(rows: usize, cols: usize, dtype: DType, max_bytes: Option<u64>) -> bool {
    max_bytes.is_some_and(|limit| (rows * cols * dtype.size()) as u64 > limit)
}

/// `x · [W₁ᵀ W₂ᵀ …]`: the logits of `x` `[n, cols]` against each block (`[cols, rows_i]`, as
/// [`RowBlocks::transposed`] gives them), side by side, `[n, rows]`.
pub fn project(x: Tensor<2>, transposed_blocks: &[Tensor<2>], fused: bool) -> Tensor<2> {
    Tensor::cat(transposed_blocks.iter().map(|w| kernels::matmul(x.clone(), w.clone(), fused)).collect(), 1)
}

/// An embedding table kept on the host, where a batch's rows are looked up (and, packed,
/// dequantized): the device never holds it whole.
#[derive(Debug)]
pub enum HostTable {
    Packed(HostPacked),
    /// Row-major `[rows, cols]` f32.
    Dense {
        values: Vec<f32>,
        cols: usize,
    },
}

impl HostTable {
    pub fn cols(&self) -> usize {
        match self {
            Self::Packed(packed) => packed.layout.cols,
            Self::Dense { cols, .. } => *cols,
        }
    }

    /// The rows `ids` (any order, repeats allowed; ids past the table clamp to its last row, as
    /// the device's gather does), row-major f32.
    pub fn rows(&self, ids: &[i64]) -> Vec<f32> {
        match self {
            Self::Packed(packed) => {
                let last = packed.layout.rows.saturating_sub(1);
                packed.dequantize_rows(ids.iter().map(|&id| (id.max(0) as usize).min(last)))
            }
            Self::Dense { values, cols } => {
                let last = (values.len() / cols).saturating_sub(1);
                ids.iter()
                    .flat_map(|&id| {
                        let row = (id.max(0) as usize).min(last);
                        values[row * cols..(row + 1) * cols].iter().copied()
                    })
                    .collect()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_cover_the_rows_and_their_logits_are_the_whole_tables() {
        let device = Device::flex();
        let (rows, cols) = (11, 4);
        let values: Vec<f32> = (0..rows * cols).map(|i| ((i * 37 % 23) as f32 - 11.0) / 7.0).collect();
        // Three rows of four f32 per block: 3 + 3 + 3 + 2.
        let blocks = RowBlocks::new(&values, rows, cols, DType::F32, 3 * 4 * 4 + 5, &device);
        assert_eq!(blocks.blocks.iter().map(|b| b.dims()).collect::<Vec<_>>(), [[3, 4], [3, 4], [3, 4], [2, 4]]);

        let x = Tensor::<2>::from_data(TensorData::new((0..2 * cols).map(|i| i as f32 - 3.0).collect::<Vec<_>>(), [2, cols]), &device);
        let whole = Tensor::<2>::from_data(TensorData::new(values.clone(), [rows, cols]), &device);
        let expected = x.clone().matmul(whole.transpose()).into_data().try_into_vec::<f32>().unwrap();
        for fused in [false, true] {
            let got = project(x.clone(), &blocks.transposed(), fused);
            assert_eq!(got.dims(), [2, rows]);
            let got = got.into_data().try_into_vec::<f32>().unwrap();
            let worst = got.iter().zip(&expected).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
            assert!(worst < 1e-5, "fused {fused}: {got:?} vs {expected:?}");
        }
    }

    #[test]
    fn a_dense_host_table_gives_the_rows_asked_for() {
        let table = HostTable::Dense { values: (0..12).map(|v| v as f32).collect(), cols: 3 };
        assert_eq!(table.cols(), 3);
        assert_eq!(table.rows(&[2, 0, 2, 9, -1]), [6., 7., 8., 0., 1., 2., 6., 7., 8., 9., 10., 11., 0., 1., 2.]);
        assert!(exceeds_binding(320, 64, DType::F32, Some(65536)));
        assert!(!exceeds_binding(320, 64, DType::F16, Some(65536)));
        assert!(!exceeds_binding(320, 64, DType::F32, None));
        assert_eq!(rows_per_block(64, DType::F32, 65536), 256);
        assert_eq!(rows_per_block(64, DType::F32, 3), 1);
    }
}
