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
    // `gemm` overwrites each result without reading it: the memory is left uninitialised (zeroing
    // it would be one more pass over it).
    let product = |b_index: usize, output: &mut [MaybeUninit<f32>], parallelism: Parallelism| {
        let (a_at, b_at) = (a.batch_offset(b_index, batch_shape), b.batch_offset(b_index, batch_shape));
        let (a_rows, a_cols) = (a.strides[rank - 2], a.strides[rank - 1]);
        let (b_rows, b_cols) = (b.strides[rank - 2], b.strides[rank - 1]);
        // SAFETY: the offsets and strides are the operands' own layouts, which stay within their
        // storage for every index of their shapes; `output` is `m × n`, written row-major and
        // never read (`read_dst` false).
        unsafe {
            gemm::gemm(
                m,
                n,
                k,
                output.as_mut_ptr().cast::<f32>(),
                1,
                n as isize,
                false,
                a.values.as_ptr().offset(a_at),
                a_cols,
                a_rows,
                b.values.as_ptr().offset(b_at),
                b_cols,
                b_rows,
                0.0,
                1.0,
                false,
                false,
                false,
                parallelism,
            );
        }
    };
    // Large products split over the cores themselves; many small ones (attention's heads) go one
    // per core.
    let mut output = Vec::with_capacity(len);
    let results = &mut output.spare_capacity_mut()[..len];
    if m * n * k >= PARALLEL_PRODUCT || batches == 1 {
        let parallelism = if m * n * k >= PARALLEL_PRODUCT { Parallelism::Rayon(0) } else { Parallelism::None };
        results.chunks_mut(m * n).enumerate().for_each(|(i, result)| product(i, result, parallelism));
    } else {
        results.par_chunks_mut(m * n).enumerate().for_each(|(i, result)| product(i, result, Parallelism::None));
    }
    // SAFETY: `gemm` wrote every one of the `len` results.
    unsafe { output.set_len(len) };
    Some(from_values(output, output_shape))
}

/// An operand as it lies in its storage.
struct Operand<'a> {
    values: &'a [f32],
    start: usize,
    strides: Vec<isize>,
}

impl<'a> Operand<'a> {
    fn of(t: &'a FloatTensor<Flex>) -> Self {
        let layout = t.layout();
        Self { values: t.storage::<f32>(), start: layout.start_offset(), strides: layout.strides().to_vec() }
    }

    /// Where batch `index` (row-major over `batch_shape`) starts, in elements.
    fn batch_offset(&self, mut index: usize, batch_shape: &[usize]) -> isize {
        let mut offset = self.start as isize;
        for (axis, &size) in batch_shape.iter().enumerate().rev() {
            offset += (index % size) as isize * self.strides[axis];
            index /= size;
        }
        offset
    }
}

/// A CPU tensor over `values` as allocated: no copy.
fn from_values(values: Vec<f32>, shape: Vec<usize>) -> FloatTensor<Flex> {
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

    fn close<const D: usize>(what: &str, ours: Tensor<D>, burns: Tensor<D>) {
        assert_eq!(ours.dims(), burns.dims(), "{what}: shape");
        let values = |t: Tensor<D>| t.into_data().try_into_vec::<f32>().expect("f32 values");
        let (ours, burns) = (values(ours), values(burns));
        let worst = ours.iter().zip(&burns).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(worst <= 1e-4, "{what}: max |difference| {worst:e}");
    }

    /// Against Burn's matmul: contiguous and transposed operands, batches (one of them laid out
    /// with its heads swapped in, so the batch strides are not contiguous), products large enough
    /// to be split over the cores, empty products, and broadcast batches (Burn's own path).
    #[test]
    fn gemm_products_match_burns_matmul_for_every_layout() {
        let device = Device::flex();
        let random = |shape: [usize; 2]| Tensor::<2>::random(shape, Distribution::Normal(0.0, 1.0), &device);
        let (a, b) = (random([37, 24]), random([24, 19]));
        close("contiguous", product(a.clone(), b.clone()), a.clone().matmul(b.clone()));
        let (at, bt) = (random([24, 37]).transpose(), random([19, 24]).transpose());
        close("transposed", product(at.clone(), bt.clone()), at.matmul(bt));
        let (big_a, big_b) = (random([300, 200]), random([200, 250]));
        close("split over the cores", product(big_a.clone(), big_b.clone()), big_a.matmul(big_b));

        let random4 = |shape: [usize; 4]| Tensor::<4>::random(shape, Distribution::Normal(0.0, 1.0), &device);
        let swapped = random4([2, 5, 3, 8]).swap_dims(1, 2);
        let keys = random4([2, 3, 7, 8]).swap_dims(2, 3);
        close("batched, strided batches", product(swapped.clone(), keys.clone()), swapped.matmul(keys));

        let empty_inner = (Tensor::<2>::zeros([4, 0], &device), Tensor::<2>::zeros([0, 3], &device));
        close("k = 0", product(empty_inner.0.clone(), empty_inner.1.clone()), Tensor::<2>::zeros([4, 3], &device));
        let no_rows = (Tensor::<2>::zeros([0, 5], &device), random([5, 3]));
        assert_eq!(product(no_rows.0, no_rows.1).dims(), [0, 3]);

        let (batch_a, shared_b) = (random4([2, 3, 4, 5]), random4([1, 1, 5, 6]));
        close("broadcast batch", product(batch_a.clone(), shared_b.clone()), batch_a.matmul(shared_b));
    }
}
