//! The CPU's matmul: `gemm`, the crate Burn's CPU backend multiplies with, called on the operands
//! where they lie (transposed views included) and writing into a result allocated once. Burn's CPU
//! matmul (burn-flex 0.22) allocates its result zeroed and then copies it into a second, more
//! aligned allocation before multiplying into it: a pass over fresh memory, with its page faults,
//! for every product (BENCHMARKS.md, "... fewer passes over fresh memory on the CPU").

use std::mem::MaybeUninit;

use burn::backend::Flex;
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::tensor::{DType, Tensor, TensorData};
use gemm::Parallelism;
use rayon::prelude::*;

/// Multiply-adds in one product past which `gemm` splits it over every core (Burn's threshold).
const PARALLEL_PRODUCT: usize = 192 * 192 * 192;

/// `a · b` of f32 tensors `[..., m, k]` and `[..., k, n]` with the same leading (batch) axes;
/// `None` for anything else (other types, broadcast batches), which Burn's matmul takes.
pub(super) fn matmul(a: &FloatTensor<Flex>, b: &FloatTensor<Flex>) -> Option<FloatTensor<Flex>> {
    let (a_shape, b_shape) = (a.layout().shape().to_vec(), b.layout().shape().to_vec());
    let rank = a_shape.len();
    let same_batches = rank >= 2 && b_shape.len() == rank && a_shape[..rank - 2] == b_shape[..rank - 2];
    if a.dtype() != DType::F32 || b.dtype() != DType::F32 || !same_batches || a_shape[rank - 1] != b_shape[rank - 2] {
        return None;
    }
    let (m, k, n) = (a_shape[rank - 2], a_shape[rank - 1], b_shape[rank - 1]);
    let batch_shape = &a_shape[..rank - 2];
    let batches: usize = batch_shape.iter().product();
    let len = batches * m * n;
    let mut output_shape = a_shape.clone();
    output_shape[rank - 1] = n;
    if len == 0 || k == 0 {
        return Some(from_values(vec![0.0; len], output_shape));
    }

    let (a, b) = (Operand::of(a), Operand::of(b));
    let product = |index: usize, output: &mut [MaybeUninit<f32>], parallelism: Parallelism| {
        let (a, b) = (a.matrix(index, batch_shape), b.matrix(index, batch_shape));
        multiply(Destination::Fresh(output), 0, n, a, b, 1.0, parallelism);
    };
    // Large products split over the cores themselves; many small ones (attention's heads) go one
    // per core.
    let mut output = Vec::with_capacity(len);
    let results = &mut output.spare_capacity_mut()[..len];
    if m * n * k >= PARALLEL_PRODUCT || batches == 1 {
        results.chunks_mut(m * n).enumerate().for_each(|(i, result)| product(i, result, parallelism(m, n, k)));
    } else {
        results.par_chunks_mut(m * n).enumerate().for_each(|(i, result)| product(i, result, Parallelism::None));
    }
    // SAFETY: `multiply` wrote every one of the `len` results.
    unsafe { output.set_len(len) };
    Some(from_values(output, output_shape))
}

/// `base + scale·[down₀·b₀ | down₁·b₁ | …]` (see `lora_update.rs`) of 2-D f32 tensors
/// ([`is_matrix`]): block `j` multiplies the `rank` columns `j·rank..` of `down` by the next
/// `width` columns of `b` into columns `start..start + width` of `base`, accumulated in `base`'s
/// memory where no one else holds it.
pub(super) fn lora_update(
    base: FloatTensor<Flex>,
    down: &FloatTensor<Flex>,
    b: &FloatTensor<Flex>,
    scale: f32,
    blocks: &[(usize, usize)],
) -> FloatTensor<Flex> {
    let (down, b) = (Matrix::of(down).expect("a 2-D f32 `down`"), Matrix::of(b).expect("a 2-D f32 `b`"));
    let rank = b.rows;
    let mut output = super::cpu_passes::writable(base);
    let width = output.layout().shape()[1];
    let values = output.try_storage_mut::<f32>().expect("a tensor held once");
    for (j, (&(start, _), (b_start, b_width))) in blocks.iter().zip(b_columns(blocks)).enumerate() {
        let (down, b) = (down.columns(j * rank, rank), b.columns(b_start, b_width));
        multiply(Destination::Accumulate(&mut *values), start, width, down, b, scale, parallelism(down.rows, b.cols, rank));
    }
    output
}

/// Whether `t` is a 2-D f32 tensor, which the products here take.
pub(super) fn is_matrix(t: &FloatTensor<Flex>) -> bool {
    t.dtype() == DType::F32 && t.layout().shape().num_dims() == 2
}

/// The gradients of [`lora_update`] for `down` and `b`, given the gradient of its output:
/// `scale·grad_j·b_jᵀ` into the rank columns of block `j`, and `scale·down_jᵀ·grad_j` into its
/// columns of `b`. `None` unless all three are 2-D f32.
pub(super) fn lora_update_backward(
    down: &FloatTensor<Flex>,
    b: &FloatTensor<Flex>,
    grad: &FloatTensor<Flex>,
    scale: f32,
    blocks: &[(usize, usize)],
) -> Option<(FloatTensor<Flex>, FloatTensor<Flex>)> {
    let (down, b, grad) = (Matrix::of(down)?, Matrix::of(b)?, Matrix::of(grad)?);
    let (rows, rank) = (down.rows, b.rows);
    // Every column of both gradients is written by one block.
    assert_eq!(blocks.len() * rank, down.cols, "one rank-wide block of `down` per block");
    assert_eq!(blocks.iter().map(|&(_, width)| width).sum::<usize>(), b.cols, "the blocks cover `b`");
    let mut grad_down = Vec::with_capacity(down.rows * down.cols);
    let mut grad_b = Vec::with_capacity(b.rows * b.cols);
    let (into_down, into_b) =
        (&mut grad_down.spare_capacity_mut()[..down.rows * down.cols], &mut grad_b.spare_capacity_mut()[..b.rows * b.cols]);
    for (j, (&(start, width), (b_start, _))) in blocks.iter().zip(b_columns(blocks)).enumerate() {
        let (grad_j, b_j, down_j) = (grad.columns(start, width), b.columns(b_start, width), down.columns(j * rank, rank));
        multiply(Destination::Fresh(&mut *into_down), j * rank, down.cols, grad_j, b_j.transposed(), scale, parallelism(rows, rank, width));
        multiply(Destination::Fresh(&mut *into_b), b_start, b.cols, down_j.transposed(), grad_j, scale, parallelism(rank, width, rows));
    }
    // SAFETY: the blocks cover every column of both (asserted above), and each wrote all its rows.
    unsafe {
        grad_down.set_len(down.rows * down.cols);
        grad_b.set_len(b.rows * b.cols);
    }
    Some((from_values(grad_down, vec![down.rows, down.cols]), from_values(grad_b, vec![b.rows, b.cols])))
}

/// Each block's columns of `b`, left to right: `(first, width)`.
fn b_columns(blocks: &[(usize, usize)]) -> impl Iterator<Item = (usize, usize)> + '_ {
    blocks.iter().scan(0, |first, &(_, width)| {
        let start = *first;
        *first += width;
        Some((start, width))
    })
}

/// How `gemm` runs an `m × k` by `k × n` product: over every core past [`PARALLEL_PRODUCT`].
pub(super) fn parallelism(m: usize, n: usize, k: usize) -> Parallelism {
    if m * n * k >= PARALLEL_PRODUCT { Parallelism::Rayon(0) } else { Parallelism::None }
}

/// A 2-D f32 matrix as it lies in memory: element `(i, j)` at `values[offset + i·row_stride +
/// j·col_stride]`, every one of which lies within `values` (checked where one is made).
#[derive(Clone, Copy)]
pub(super) struct Matrix<'a> {
    values: &'a [f32],
    offset: isize,
    rows: usize,
    cols: usize,
    row_stride: isize,
    col_stride: isize,
}

impl<'a> Matrix<'a> {
    /// A 2-D f32 tensor where it lies.
    fn of(t: &'a FloatTensor<Flex>) -> Option<Self> {
        let layout = t.layout();
        let (shape, strides) = (layout.shape(), layout.strides());
        if t.dtype() != DType::F32 || shape.num_dims() != 2 {
            return None;
        }
        let values = t.storage::<f32>();
        Some(Self::new(values, layout.start_offset() as isize, [shape[0], shape[1]], [strides[0], strides[1]]))
    }

    /// A row-major `rows × cols` matrix at the start of `values`.
    pub(super) fn row_major(values: &'a [f32], rows: usize, cols: usize) -> Self {
        Self::new(values, 0, [rows, cols], [cols as isize, 1])
    }

    fn new(values: &'a [f32], offset: isize, [rows, cols]: [usize; 2], [row_stride, col_stride]: [isize; 2]) -> Self {
        let matrix = Self { values, offset, rows, cols, row_stride, col_stride };
        if rows > 0 && cols > 0 {
            let reach = |stride: isize, count: usize| stride * (count as isize - 1);
            let (row_reach, col_reach) = (reach(row_stride, rows), reach(col_stride, cols));
            let lowest = offset + row_reach.min(0) + col_reach.min(0);
            let highest = offset + row_reach.max(0) + col_reach.max(0);
            assert!(lowest >= 0 && (highest as usize) < values.len(), "a matrix within its storage");
        }
        matrix
    }

    /// Columns `start..start + width`.
    fn columns(self, start: usize, width: usize) -> Self {
        assert!(start + width <= self.cols, "columns {start}..{} of {}", start + width, self.cols);
        Self::new(self.values, self.offset + start as isize * self.col_stride, [self.rows, width], [self.row_stride, self.col_stride])
    }

    /// Rows `start..start + count`.
    pub(super) fn rows(self, start: usize, count: usize) -> Self {
        assert!(start + count <= self.rows, "rows {start}..{} of {}", start + count, self.rows);
        Self::new(self.values, self.offset + start as isize * self.row_stride, [count, self.cols], [self.row_stride, self.col_stride])
    }

    /// Row `i`, element by element.
    pub(super) fn row(self, i: usize) -> impl Iterator<Item = f32> + 'a {
        assert!(i < self.rows, "row {i} of {}", self.rows);
        let start = self.offset + i as isize * self.row_stride;
        (0..self.cols).map(move |j| self.values[(start + j as isize * self.col_stride) as usize])
    }

    pub(super) fn transposed(self) -> Self {
        Self { rows: self.cols, cols: self.rows, row_stride: self.col_stride, col_stride: self.row_stride, ..self }
    }
}

/// Where a product goes: memory it writes without reading (uninitialised, or values it
/// replaces), or results it adds to.
pub(super) enum Destination<'a> {
    Fresh(&'a mut [MaybeUninit<f32>]),
    Overwrite(&'a mut [f32]),
    Accumulate(&'a mut [f32]),
}

/// `scale · lhs · rhs` written into (or, accumulating, added to) the row-major `m × n` block of
/// `destination` that starts at `offset`, `row_stride` apart.
pub(super) fn multiply(
    destination: Destination,
    offset: usize,
    row_stride: usize,
    lhs: Matrix,
    rhs: Matrix,
    scale: f32,
    parallelism: Parallelism,
) {
    let (m, k, n) = (lhs.rows, lhs.cols, rhs.cols);
    assert_eq!(rhs.rows, k, "the inner dimensions agree");
    if m == 0 || n == 0 {
        return;
    }
    let (dst, len, read_dst) = match destination {
        Destination::Fresh(values) => (values.as_mut_ptr().cast::<f32>(), values.len(), false),
        Destination::Overwrite(values) => (values.as_mut_ptr(), values.len(), false),
        Destination::Accumulate(values) => (values.as_mut_ptr(), values.len(), true),
    };
    assert!(n <= row_stride && offset + (m - 1) * row_stride + n <= len, "the result within its destination");
    if k == 0 && !read_dst {
        // `gemm` reads nothing then; a fresh block must still be written.
        for row in 0..m {
            // SAFETY: within the destination, as checked above.
            unsafe { std::ptr::write_bytes(dst.add(offset + row * row_stride), 0, n) };
        }
        return;
    }
    // SAFETY: `lhs` and `rhs` lie within their storage (`Matrix::new`); the `m × n` block at
    // `offset`, rows `row_stride` apart, lies within the destination (checked above), which is
    // read only when it holds results (`Accumulate`).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.add(offset),
            1,
            row_stride as isize,
            read_dst,
            lhs.values.as_ptr().offset(lhs.offset),
            lhs.col_stride,
            lhs.row_stride,
            rhs.values.as_ptr().offset(rhs.offset),
            rhs.col_stride,
            rhs.row_stride,
            1.0,
            scale,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// A batched operand as it lies in its storage.
pub(super) struct Operand<'a> {
    values: &'a [f32],
    start: usize,
    shape: Vec<usize>,
    strides: Vec<isize>,
}

impl<'a> Operand<'a> {
    pub(super) fn of(t: &'a FloatTensor<Flex>) -> Self {
        let layout = t.layout();
        Self {
            values: t.storage::<f32>(),
            start: layout.start_offset(),
            shape: layout.shape().to_vec(),
            strides: layout.strides().to_vec(),
        }
    }

    /// Batch `index` (row-major over `batch_shape`).
    pub(super) fn matrix(&self, mut index: usize, batch_shape: &[usize]) -> Matrix<'a> {
        let mut offset = self.start as isize;
        for (axis, &size) in batch_shape.iter().enumerate().rev() {
            offset += (index % size) as isize * self.strides[axis];
            index /= size;
        }
        let rank = self.shape.len();
        let dims = [self.shape[rank - 2], self.shape[rank - 1]];
        Matrix::new(self.values, offset, dims, [self.strides[rank - 2], self.strides[rank - 1]])
    }
}

/// A CPU tensor over `values` as allocated: no copy.
pub(super) fn from_values(values: Vec<f32>, shape: Vec<usize>) -> FloatTensor<Flex> {
    FlexTensor::from_data(TensorData::new(values, shape))
}

/// [`matmul`] of two CPU tensors under `Tensor`, Burn's matmul where it does not apply.
pub(super) fn product<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> Tensor<D> {
    let primitive = |t: Tensor<D>| t.try_into_primitive::<Flex>().expect("a tensor of the CPU backend");
    let (a, b) = (primitive(a), primitive(b));
    match matmul(&a, &b) {
        Some(product) => Tensor::from_primitive::<Flex>(product),
        None => Tensor::<D>::from_primitive::<Flex>(a).matmul(Tensor::from_primitive::<Flex>(b)),
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Device, Distribution, Tensor};

    use super::product;
    use crate::kernels::assert_close;

    /// Against Burn's matmul: contiguous and transposed operands, batches (one of them laid out
    /// with its heads swapped in, so the batch strides are not contiguous), products large enough
    /// to be split over the cores, empty products, and broadcast batches (Burn's own path).
    #[test]
    fn gemm_products_match_burns_matmul_for_every_layout() {
        let device = Device::flex();
        let random = |shape: [usize; 2]| Tensor::<2>::random(shape, Distribution::Normal(0.0, 1.0), &device);
        let (a, b) = (random([37, 24]), random([24, 19]));
        assert_close("contiguous", product(a.clone(), b.clone()), a.clone().matmul(b.clone()));
        let (at, bt) = (random([24, 37]).transpose(), random([19, 24]).transpose());
        assert_close("transposed", product(at.clone(), bt.clone()), at.matmul(bt));
        let (big_a, big_b) = (random([300, 200]), random([200, 250]));
        assert_close("split over the cores", product(big_a.clone(), big_b.clone()), big_a.matmul(big_b));

        let random4 = |shape: [usize; 4]| Tensor::<4>::random(shape, Distribution::Normal(0.0, 1.0), &device);
        let swapped = random4([2, 5, 3, 8]).swap_dims(1, 2);
        let keys = random4([2, 3, 7, 8]).swap_dims(2, 3);
        assert_close("batched, strided batches", product(swapped.clone(), keys.clone()), swapped.matmul(keys));

        let empty_inner = (Tensor::<2>::zeros([4, 0], &device), Tensor::<2>::zeros([0, 3], &device));
        assert_close("k = 0", product(empty_inner.0.clone(), empty_inner.1.clone()), Tensor::<2>::zeros([4, 3], &device));
        let no_rows = (Tensor::<2>::zeros([0, 5], &device), random([5, 3]));
        assert_eq!(product(no_rows.0, no_rows.1).dims(), [0, 3]);

        let (batch_a, shared_b) = (random4([2, 3, 4, 5]), random4([1, 1, 5, 6]));
        assert_close("broadcast batch", product(batch_a.clone(), shared_b.clone()), batch_a.matmul(shared_b));
    }
}
