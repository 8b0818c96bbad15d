//! Fused kernels under autodiff: the forward passes run on the inner backend and register
//! hand-written backward passes.

use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::ops::{Backward, OpsKind};
use burn::backend::tensor::{FloatTensor, IntTensor};
use burn::backend::{Autodiff, AutodiffBackend, DispatchKindConversion, DispatchTensor};

use super::attention::AttentionBackward;
use super::cross_entropy::{autodiff_loss, autodiff_loss_packed};
use super::dropout::{DropoutBackward, DropoutMatmulBackward};
use super::extension::FusedKernels;
use super::lora_update::LoraUpdateBackward;
use super::matmul::MatmulBackward;
use super::packed::PackedMatmulBackward;
use super::rms_norm::RmsNormBackward;
use super::rotary::RotaryBackward;
use super::split::{Meeting, SplitBackward};
use super::swiglu::SwigluBackward;

impl<B, C> FusedKernels for Autodiff<B, C>
where
    B: FusedKernels,
    C: CheckpointStrategy,
    DispatchTensor: DispatchKindConversion<B>,
{
    fn fused_attention(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        q_start: usize,
        window: usize,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let (q, q_node) = q.into_parts();
        let (k, k_node) = k.into_parts();
        let (v, v_node) = v.into_parts();
        let (output, lse) = B::fused_attention(q.clone(), k.clone(), v.clone(), q_start, window);
        let lse_out = Self::from_inner(lse.clone());
        let output = match AttentionBackward.prepare::<C>([q_node, k_node, v_node]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => prep.finish((q, k, v, output.clone(), lse, q_start, window), output),
            OpsKind::UnTracked(prep) => prep.finish(output),
        };
        (output, lse_out)
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
        // Gradients of gradients are not needed: compute on the inner backend, untracked.
        let (grad_q, grad_k, grad_v) = B::fused_attention_backward(
            q.into_primitive(),
            k.into_primitive(),
            v.into_primitive(),
            output.into_primitive(),
            lse.into_primitive(),
            grad.into_primitive(),
            q_start,
            window,
        );
        (Self::from_inner(grad_q), Self::from_inner(grad_k), Self::from_inner(grad_v))
    }

    fn fused_matmul(a: FloatTensor<Self>, b: FloatTensor<Self>) -> FloatTensor<Self> {
        // Each operand is kept only for the other's gradient.
        let (keep_a, keep_b) = (b.is_tracked(), a.is_tracked());
        let (a, a_node) = a.into_parts();
        let (b, b_node) = b.into_parts();
        let output = B::fused_matmul(a.clone(), b.clone());
        match MatmulBackward.prepare::<C>([a_node, b_node]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => prep.finish((keep_a.then_some(a), keep_b.then_some(b)), output),
            OpsKind::UnTracked(prep) => prep.finish(output),
        }
    }

    fn fused_lora_update(
        base: FloatTensor<Self>,
        down: FloatTensor<Self>,
        b: FloatTensor<Self>,
        scale: f32,
        blocks: Vec<(usize, usize)>,
    ) -> FloatTensor<Self> {
        let (base, base_node) = base.into_parts();
        let (down, down_node) = down.into_parts();
        let (b, b_node) = b.into_parts();
        // `base` is handed on alone, so that the update may go into its memory.
        let output = B::fused_lora_update(base, down.clone(), b.clone(), scale, blocks.clone());
        match LoraUpdateBackward.prepare::<C>([base_node, down_node, b_node]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => prep.finish((down, b, scale, blocks), output),
            OpsKind::UnTracked(prep) => prep.finish(output),
        }
    }

    fn fused_lora_update_backward(
        down: FloatTensor<Self>,
        b: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        scale: f32,
        blocks: Vec<(usize, usize)>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let (grad_down, grad_b) =
            B::fused_lora_update_backward(down.into_primitive(), b.into_primitive(), grad.into_primitive(), scale, blocks);
        (Self::from_inner(grad_down), Self::from_inner(grad_b))
    }

    fn packed_matmul(
        x: FloatTensor<Self>,
        values: IntTensor<Self>,
        params: IntTensor<Self>,
        rows: usize,
        cols: usize,
        bits: usize,
    ) -> FloatTensor<Self> {
        let (x, x_node) = x.into_parts();
        let output = B::packed_matmul(x, values.clone(), params.clone(), rows, cols, bits);
        match PackedMatmulBackward.prepare::<C>([x_node]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => prep.finish((values, params, rows, cols, bits), output),
            OpsKind::UnTracked(prep) => prep.finish(output),
        }
    }

    fn packed_matmul_input_grad(
        grad: FloatTensor<Self>,
        values: IntTensor<Self>,
        params: IntTensor<Self>,
        rows: usize,
        cols: usize,
        bits: usize,
    ) -> FloatTensor<Self> {
        Self::from_inner(B::packed_matmul_input_grad(grad.into_primitive(), values, params, rows, cols, bits))
    }

    fn cross_entropy_rows(logits: FloatTensor<Self>, targets: Vec<u32>) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let (lse, nll) = B::cross_entropy_rows(logits.into_primitive(), targets);
        (Self::from_inner(lse), Self::from_inner(nll))
    }

    fn cross_entropy_grad(logits: FloatTensor<Self>, lse: FloatTensor<Self>, targets: Vec<u32>) -> FloatTensor<Self> {
        Self::from_inner(B::cross_entropy_grad(logits.into_primitive(), lse.into_primitive(), targets))
    }

    fn fused_cross_entropy(hidden: FloatTensor<Self>, head: FloatTensor<Self>, targets: Vec<u32>, chunk: usize) -> FloatTensor<Self> {
        autodiff_loss::<B, C>(hidden, head, targets, chunk)
    }

    fn fused_cross_entropy_packed(
        hidden: FloatTensor<Self>,
        values: IntTensor<Self>,
        params: IntTensor<Self>,
        layout: (usize, usize, usize),
        targets: Vec<u32>,
        chunk: usize,
    ) -> FloatTensor<Self> {
        autodiff_loss_packed::<B, C>(hidden, values, params, layout, targets, chunk)
    }

    fn split_columns(product: FloatTensor<Self>, widths: Vec<usize>) -> Vec<FloatTensor<Self>> {
        // Each piece is a node of its own with the product as its parent.
        let parents: Vec<_> = widths.iter().map(|_| product.clone().into_parts().1).collect();
        let pieces = B::split_columns(product.into_primitive(), widths);
        let meeting = Meeting::new(pieces.len());
        pieces
            .into_iter()
            .zip(parents)
            .enumerate()
            .map(|(index, (piece, parent))| match SplitBackward.prepare::<C>([parent]).compute_bound().stateful() {
                OpsKind::Tracked(prep) => prep.finish((index, meeting.clone()), piece),
                OpsKind::UnTracked(prep) => prep.finish(piece),
            })
            .collect()
    }

    fn fused_rms_norm(x: FloatTensor<Self>, weight: FloatTensor<Self>, eps: f32) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let (x, x_node) = x.into_parts();
        let (weight, weight_node) = weight.into_parts();
        let (output, inv_rms) = B::fused_rms_norm(x.clone(), weight.clone(), eps);
        let inv_rms_out = Self::from_inner(inv_rms.clone());
        let output = match RmsNormBackward.prepare::<C>([x_node, weight_node]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => prep.finish((x, weight, inv_rms), output),
            OpsKind::UnTracked(prep) => prep.finish(output),
        };
        (output, inv_rms_out)
    }

    fn fused_rms_norm_backward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        inv_rms: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let grad = B::fused_rms_norm_backward(x.into_primitive(), weight.into_primitive(), inv_rms.into_primitive(), grad.into_primitive());
        Self::from_inner(grad)
    }

    fn fused_rotary(x: FloatTensor<Self>, cos: FloatTensor<Self>, sin: FloatTensor<Self>, inverse: bool) -> FloatTensor<Self> {
        let (x, x_node) = x.into_parts();
        let (cos, sin) = (cos.into_primitive(), sin.into_primitive());
        let output = B::fused_rotary(x, cos.clone(), sin.clone(), inverse);
        match RotaryBackward.prepare::<C>([x_node]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => prep.finish((cos, sin, inverse), output),
            OpsKind::UnTracked(prep) => prep.finish(output),
        }
    }

    fn fused_swiglu(gate: FloatTensor<Self>, up: FloatTensor<Self>) -> FloatTensor<Self> {
        let (gate, gate_node) = gate.into_parts();
        let (up, up_node) = up.into_parts();
        let output = B::fused_swiglu(gate.clone(), up.clone());
        match SwigluBackward.prepare::<C>([gate_node, up_node]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => prep.finish((gate, up), output),
            OpsKind::UnTracked(prep) => prep.finish(output),
        }
    }

    fn fused_swiglu_backward(
        gate: FloatTensor<Self>,
        up: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let (grad_gate, grad_up) = B::fused_swiglu_backward(gate.into_primitive(), up.into_primitive(), grad.into_primitive());
        (Self::from_inner(grad_gate), Self::from_inner(grad_up))
    }

    fn fused_dropout(x: FloatTensor<Self>, seed: FloatTensor<Self>, keep: f32) -> FloatTensor<Self> {
        let (x, x_node) = x.into_parts();
        let seed = seed.into_primitive();
        let output = B::fused_dropout(x, seed.clone(), keep);
        match DropoutBackward.prepare::<C>([x_node]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => prep.finish((seed, keep), output),
            OpsKind::UnTracked(prep) => prep.finish(output),
        }
    }

    fn fused_dropout_matmul(x: FloatTensor<Self>, seed: FloatTensor<Self>, a: FloatTensor<Self>, keep: f32) -> FloatTensor<Self> {
        let (x, x_node) = x.into_parts();
        let (a, a_node) = a.into_parts();
        let seed = seed.into_primitive();
        let output = B::fused_dropout_matmul(x.clone(), seed.clone(), a.clone(), keep);
        match DropoutMatmulBackward.prepare::<C>([x_node, a_node]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => prep.finish((x, seed, a, keep), output),
            OpsKind::UnTracked(prep) => prep.finish(output),
        }
    }

    fn fused_dropout_matmul_backward(
        x: FloatTensor<Self>,
        seed: FloatTensor<Self>,
        a: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        keep: f32,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let (grad_x, grad_a) =
            B::fused_dropout_matmul_backward(x.into_primitive(), seed.into_primitive(), a.into_primitive(), grad.into_primitive(), keep);
        (Self::from_inner(grad_x), Self::from_inner(grad_a))
    }

    fn fused_add_squares(t: FloatTensor<Self>, partials: FloatTensor<Self>, slot: usize) -> FloatTensor<Self> {
        Self::from_inner(B::fused_add_squares(t.into_primitive(), partials.into_primitive(), slot))
    }

    fn fused_adamw(
        param: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        m: FloatTensor<Self>,
        v: FloatTensor<Self>,
        coefficients: [f32; 8],
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let (p, m, v) = B::fused_adamw(param.into_primitive(), grad.into_primitive(), m.into_primitive(), v.into_primitive(), coefficients);
        (Self::from_inner(p), Self::from_inner(m), Self::from_inner(v))
    }
}
