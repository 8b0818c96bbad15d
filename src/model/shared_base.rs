//! Projections of one input whose frozen bases share one matmul: the query, key and value
//! projections of an attention layer, the gate and up projections of an MLP.
//!
//! When their weights do not train (LoRA, and the frozen layers of a partial fine-tuning), the
//! bases are stored side by side once, `[d_in, Σ d_out]` (or their rows stacked in blocks, for a
//! packed base), and `x` multiplies them in one product, cut into each projection's columns
//! (`kernels::split_columns`): fewer and wider matmuls on every device, and one input gradient
//! instead of one per projection. Each projection keeps its [`Linear`] under its checkpoint
//! name, with a placeholder weight (as a packed base has) that carries its adapter and bias,
//! so LoRA targets, checkpoints and exports see the model they always did; exports read a
//! frozen base from the source checkpoint, never from the device.

use burn::module::Module;
use burn::tensor::{Device, Tensor};

use super::linear::{Linear, frozen_product, outputs_from_base};
use super::llama::ForwardOptions;
use super::packed::{PackedLayout, PackedWeight, placeholder};

#[derive(Module, Debug)]
pub struct SharedBase {
    /// The dense bases side by side, `[d_in, Σ d_out]`, in the order of the projections. A
    /// constant, not a parameter: the projections' placeholders stand for it wherever
    /// parameters are counted, saved or trained.
    pub weight: Option<Tensor<2>>,
    /// The packed bases' rows stacked, `[Σ d_out, d_in]` in blocks.
    pub packed: Option<PackedWeight>,
    /// Each projection's `d_out`, in order.
    #[module(skip)]
    pub widths: Vec<usize>,
}

impl SharedBase {
    /// Moves the frozen bases of `linears` into one shared base, leaving each a placeholder of its
    /// shape. The base is allocated where the loader put the weights (the allocator's persistent
    /// pool): the bases it replaces are freed for [`Device::memory_cleanup`] to return. `None`,
    /// and the layers untouched, unless every one is frozen, without an adapter, and stored alike
    /// (all dense in one dtype, or all packed with the same bits).
    pub fn take(linears: &mut [&mut Linear], device: &Device) -> Option<Self> {
        let first = linears.first()?;
        let stored_alike = |l: &&mut Linear| match (&first.packed, &l.packed) {
            (None, None) => l.weight.dtype() == first.weight.dtype(),
            (Some(a), Some(b)) => a.layout.bits == b.layout.bits,
            _ => false,
        };
        let shareable = |l: &&mut Linear| !l.weight.is_require_grad() && l.weight.adapter().is_none() && !l.shares_base;
        if !linears.iter().all(|l| shareable(l) && stored_alike(l) && l.d_in() == first.d_in()) {
            return None;
        }
        let widths: Vec<usize> = linears.iter().map(|l| l.d_out()).collect();
        let shared = if first.packed.is_some() {
            let packed: Vec<PackedWeight> = linears.iter_mut().filter_map(|l| l.packed.take()).collect();
            let layout = PackedLayout { rows: widths.iter().sum(), ..packed[0].layout };
            let (values, params) = packed.into_iter().map(|p| (p.values, p.params)).unzip();
            let (values, params) =
                device.memory_persistent_allocations((values, params), |(values, params)| (Tensor::cat(values, 0), Tensor::cat(params, 0)));
            let packed = PackedWeight { values, params, layout };
            Self { weight: None, packed: Some(packed), widths }
        } else {
            let weights: Vec<Tensor<2>> = linears.iter().map(|l| l.weight.val()).collect();
            let weight = device.memory_persistent_allocations(weights, |weights| Tensor::cat(weights, 1));
            Self { weight: Some(weight), packed: None, widths }
        };
        for linear in linears.iter_mut() {
            linear.weight = placeholder([linear.d_in(), linear.d_out()], device);
            linear.shares_base = true;
        }
        Some(shared)
    }

    /// The outputs of `linears`, the projections this base was taken from in the same order, for
    /// `x` `[batch, len, d_in]`: one product against the shared base, cut into each one's base
    /// product, to which each adds its adapter's update and its bias.
    pub fn forward<const N: usize>(&self, x: Tensor<3>, linears: [&Linear; N], options: ForwardOptions) -> [Tensor<3>; N] {
        let [batch, len, d_in] = x.dims();
        let x = x.reshape([batch * len, d_in]);
        let dense = || self.weight.clone().expect("SharedBase::take sets the weight or the packed weight");
        let product = frozen_product(x.clone(), dense, self.packed.as_ref(), options);
        outputs_from_base(x, product, linears, options).map(|y| {
            let d_out = y.dims()[1];
            y.reshape([batch, len, d_out])
        })
    }
}
