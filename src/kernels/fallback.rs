//! The fused-kernel operations on the CPU backend: what the WGSL kernels compute, in Burn's tensor
//! operations (its matmuls above all) and in element-wise passes of our own on every core
//! (`cpu_passes.rs`, `cpu_attention.rs`).

use burn::backend::Flex;
use burn::backend::tensor::{FloatTensor, IntTensor};
use burn::tensor::{Int, Tensor, TensorData};

use super::cpu_matmul;
use super::cpu_passes;
use super::cross_entropy::loss_only;
use super::dropout::{dropout_any_shape, dropout_matmul_grads};
use super::extension::FusedKernels;
use super::lora_update::{lora_update_backward_reference, lora_update_reference};
use super::packed::dense;
use crate::model::packed::{HostPacked, PackedLayout};

fn tensor<const D: usize>(t: FloatTensor<Flex>) -> Tensor<D> {
    Tensor::from_primitive::<Flex>(t)
}

fn primitive<const D: usize>(t: Tensor<D>) -> FloatTensor<Flex> {
    t.try_into_primitive::<Flex>().expect("results stay on the CPU backend")
}

/// The packed weight's words, back on the host.
fn host_packed(values: IntTensor<Flex>, params: IntTensor<Flex>, rows: usize, cols: usize, bits: usize) -> HostPacked {
    let words = |t: IntTensor<Flex>| {
        let data = Tensor::<1, Int>::from_primitive::<Flex>(t).into_data().convert::<i32>();
        data.try_into_vec::<i32>().unwrap_or_default().into_iter().map(|w| w as u32).collect()
    };
    HostPacked { layout: PackedLayout { rows, cols, bits }, values: words(values), params: words(params) }
}

impl FusedKernels for Flex {
    fn packed_matmul(
        x: FloatTensor<Self>,
        values: IntTensor<Self>,
        params: IntTensor<Self>,
        rows: usize,
        cols: usize,
        bits: usize,
    ) -> FloatTensor<Self> {
        let x = tensor::<2>(x);
        let w = dense(&host_packed(values, params, rows, cols, bits), &x.device());
        primitive(cpu_matmul::product(x, w.transpose()))
    }

    fn packed_matmul_input_grad(
        grad: FloatTensor<Self>,
        values: IntTensor<Self>,
        params: IntTensor<Self>,
        rows: usize,
        cols: usize,
        bits: usize,
    ) -> FloatTensor<Self> {
        let grad = tensor::<2>(grad);
        let w = dense(&host_packed(values, params, rows, cols, bits), &grad.device());
        primitive(cpu_matmul::product(grad, w))
    }

    fn fused_matmul(a: FloatTensor<Self>, b: FloatTensor<Self>) -> FloatTensor<Self> {
        if let Some(product) = cpu_matmul::matmul(&a, &b) {
            return product;
        }
        let a = tensor::<2>(a);
        primitive::<2>(a.clone().matmul(tensor::<2>(b).cast(a.dtype())))
    }

    fn fused_lora_update(
        base: FloatTensor<Self>,
        down: FloatTensor<Self>,
        b: FloatTensor<Self>,
        scale: f32,
        blocks: Vec<(usize, usize)>,
    ) -> FloatTensor<Self> {
        if [&base, &down, &b].into_iter().all(cpu_matmul::is_matrix) {
            return cpu_matmul::lora_update(base, &down, &b, scale, &blocks);
        }
        primitive(lora_update_reference(tensor(base), tensor(down), tensor(b), scale, &blocks))
    }

    fn fused_lora_update_backward(
        down: FloatTensor<Self>,
        b: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        scale: f32,
        blocks: Vec<(usize, usize)>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        if let Some((grad_down, grad_b)) = cpu_matmul::lora_update_backward(&down, &b, &grad, scale, &blocks) {
            return (grad_down, grad_b);
        }
        let (grad_down, grad_b) = lora_update_backward_reference(tensor(down), tensor(b), tensor(grad), scale, &blocks);
        (primitive(grad_down), primitive(grad_b))
    }

    fn fused_attention(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        q_start: usize,
        window: usize,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let window = (window > 0).then_some(window);
        let (output, lse) = super::cpu_attention::forward(tensor(q), tensor(k), tensor(v), q_start, window);
        (primitive(output), primitive(lse))
    }

    fn fused_attention_backward(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        output: FloatTensor<Self>,
        lse: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        q_start: usize,
        window: usize,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let window = (window > 0).then_some(window);
        let (q, k, v, output, grad) = (tensor::<4>(q), tensor::<4>(k), tensor::<4>(v), tensor::<4>(output), tensor::<4>(grad));
        let (grad_q, grad_k, grad_v) = super::cpu_attention::backward(q, k, v, output, tensor::<3>(lse), grad, q_start, window);
        (primitive(grad_q), primitive(grad_k), primitive(grad_v))
    }

    fn cross_entropy_rows(logits: FloatTensor<Self>, targets: Vec<u32>) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let logits = tensor::<2>(logits);
        let (rows, device) = (logits.dims()[0], logits.device());
        let (lse, nll) = cpu_passes::cross_entropy_rows(logits, &targets);
        let column = |values: Vec<f32>| primitive::<1>(Tensor::from_data(TensorData::new(values, [rows]), &device));
        (column(lse), column(nll))
    }

    fn cross_entropy_grad(logits: FloatTensor<Self>, lse: FloatTensor<Self>, targets: Vec<u32>) -> FloatTensor<Self> {
        let lse = cpu_passes::host(tensor::<1>(lse));
        primitive(cpu_passes::softmax_minus_one_hot(tensor(logits), lse.values(), &targets))
    }

    fn fused_cross_entropy(hidden: FloatTensor<Self>, head: FloatTensor<Self>, targets: Vec<u32>, chunk: usize) -> FloatTensor<Self> {
        loss_only::<Self>(hidden, head, targets, chunk)
    }

    fn fused_cross_entropy_packed(
        hidden: FloatTensor<Self>,
        values: IntTensor<Self>,
        params: IntTensor<Self>,
        layout: (usize, usize, usize),
        targets: Vec<u32>,
        chunk: usize,
    ) -> FloatTensor<Self> {
        super::cross_entropy::loss_only_packed::<Self>(hidden, values, params, layout, targets, chunk)
    }

    fn split_columns(product: FloatTensor<Self>, widths: Vec<usize>) -> Vec<FloatTensor<Self>> {
        super::split::column_views::<Self>(product, &widths)
    }

    fn fused_rms_norm(x: FloatTensor<Self>, weight: FloatTensor<Self>, eps: f32) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let (output, inv_rms) = cpu_passes::rms_norm(tensor(x), tensor(weight), eps);
        (primitive(output), primitive(inv_rms))
    }

    fn fused_rms_norm_backward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        inv_rms: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        primitive(cpu_passes::rms_norm_backward(tensor(x), tensor(weight), tensor(inv_rms), tensor(grad)))
    }

    fn fused_rotary(x: FloatTensor<Self>, cos: FloatTensor<Self>, sin: FloatTensor<Self>, inverse: bool) -> FloatTensor<Self> {
        primitive(cpu_passes::rotary(tensor(x), tensor(cos), tensor(sin), inverse))
    }

    fn fused_swiglu(gate: FloatTensor<Self>, up: FloatTensor<Self>) -> FloatTensor<Self> {
        primitive(cpu_passes::swiglu(tensor(gate), tensor(up)))
    }

    fn fused_swiglu_backward(
        gate: FloatTensor<Self>,
        up: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let (grad_gate, grad_up) = cpu_passes::swiglu_backward(tensor(gate), tensor(up), tensor(grad));
        (primitive(grad_gate), primitive(grad_up))
    }

    fn fused_dropout(x: FloatTensor<Self>, seed: FloatTensor<Self>, keep: f32) -> FloatTensor<Self> {
        primitive(cpu_passes::dropout(tensor(x), tensor(seed), keep))
    }

    fn fused_dropout_matmul(x: FloatTensor<Self>, seed: FloatTensor<Self>, a: FloatTensor<Self>, keep: f32) -> FloatTensor<Self> {
        Self::fused_matmul(dropout_any_shape::<Self>(x, seed, keep), a)
    }

    fn fused_dropout_matmul_backward(
        x: FloatTensor<Self>,
        seed: FloatTensor<Self>,
        a: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        keep: f32,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        dropout_matmul_grads::<Self>(x, seed, a, grad, keep, Self::fused_matmul)
    }

    fn fused_add_squares(t: FloatTensor<Self>, partials: FloatTensor<Self>, slot: usize) -> FloatTensor<Self> {
        primitive(cpu_passes::add_squares(tensor(t), tensor(partials), slot))
    }

    fn fused_adamw(
        param: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        m: FloatTensor<Self>,
        v: FloatTensor<Self>,
        coefficients: [f32; 8],
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let (p, m, v) = cpu_passes::adamw(tensor(param), tensor(grad), tensor(m), tensor(v), coefficients);
        (primitive(p), primitive(m), primitive(v))
    }
}
