//! Launching the WGSL kernels of `shaders/` on Burn's CubeCL backend (wgpu runtime). What each
//! kernel is (its source, template values and workgroup size) is in `wgsl.rs`.

use burn::backend::ops::FloatTensorOps;
use burn::backend::tensor::{FloatTensor, IntTensor};
use burn::backend::wgpu::{CubeBackend, CubeTensor, KernelSource, SourceKernel, into_contiguous};
use burn::cubecl::server::KernelArguments;
use burn::cubecl::{CubeCount, CubeDim};
use burn::tensor::{DType, Shape, Slice, Tensor};

use super::dropout::{dropout_any_shape, dropout_matmul_grads};
use super::extension::FusedKernels;
use super::lora_update::{lora_update_backward_reference, lora_update_reference};
use super::shape::{KernelShape, count_hardware_launch, kernel_shape};
use super::wgsl::{
    self, ADAMW, AttentionPass, BLOCK, CROSS_ENTROPY_GRAD, CROSS_ENTROPY_ROWS, DROPOUT, Family, MATMUL_BLOCK, RMS_NORM_BACKWARD,
    RMS_NORM_FORWARD, ROTARY, ROW_BLOCK, SQUARED_NORM, SWIGLU_BACKWARD, SWIGLU_FORWARD, Shader, Wgsl, WgslAttention, WgslMatmul,
};

/// `kernel` ready to launch, in workgroups of its size.
fn launchable(kernel: Wgsl) -> Box<SourceKernel<Wgsl>> {
    let invocations = kernel.invocations;
    in_workgroups(kernel, invocations)
}

/// `kernel` ready to launch as one of its family, in workgroups of its size.
fn launchable_in<Name: Send + Sync + 'static>(kernel: Wgsl) -> Box<SourceKernel<Family<Name>>> {
    let invocations = kernel.invocations;
    in_workgroups(Family::new(kernel), invocations)
}

fn in_workgroups<K: KernelSource + 'static>(kernel: K, invocations: usize) -> Box<SourceKernel<K>> {
    Box::new(SourceKernel::new(kernel, CubeDim::new_1d(invocations as u32)))
}

fn row_kernel(shader: Shader) -> Box<SourceKernel<Wgsl>> {
    launchable(wgsl::row(shader))
}

/// Launches an RMSNorm kernel over the rows of `x` `[rows, dim]`: `buffers` bound in order, then
/// the info buffer (rows, dim, then `extra_info`).
fn norm_rows(shader: Shader, x: &CubeTensor, buffers: Vec<burn::cubecl::server::BufferBinding>, extra_info: &[usize]) {
    let [rows, dim] = x.meta.shape().dims::<2>();
    let info = info_buffer(x, &[&[rows, dim], extra_info].concat());
    x.client.launch(
        launchable(wgsl::norm(shader)),
        CubeCount::Static(rows.min(65535) as u32, rows.div_ceil(65535) as u32, 1),
        KernelArguments::new().with_buffers(buffers.into_iter().chain([info.binding()]).collect()),
    );
}

/// A buffer on `on`'s device of `values` as the kernels read their `info` and parameters:
/// little-endian `u32`s.
fn info_buffer(on: &CubeTensor, values: &[usize]) -> burn::cubecl::server::Handle {
    let words: Vec<u8> = values.iter().flat_map(|&v| (v as u32).to_le_bytes()).collect();
    on.client.create_from_slice(&words)
}

/// Targets and the `[rows, vocab]` info buffer of the cross-entropy kernels.
fn cross_entropy_inputs(logits: &CubeTensor, targets: &[u32]) -> (burn::cubecl::server::Handle, burn::cubecl::server::Handle) {
    let [rows, vocab] = logits.meta.shape().dims::<2>();
    assert_eq!(targets.len(), rows, "one target per row");
    let targets: Vec<u8> = targets.iter().flat_map(|t| t.to_le_bytes()).collect();
    (logits.client.create_from_slice(&targets), info_buffer(logits, &[rows, vocab]))
}

/// The kernel of `pass` in the shape [`kernel_shape`] picks for this thread (the hardware shape
/// for heads wider than the software shape takes).
fn attention_kernel(pass: AttentionPass, head_dim: usize) -> Box<SourceKernel<Family<WgslAttention>>> {
    let shape = wgsl::attention_shape(head_dim, kernel_shape());
    if shape == KernelShape::Hardware {
        count_hardware_launch();
    }
    launchable_in(wgsl::attention(pass, head_dim, shape))
}

/// The `info` buffer every attention kernel reads.
fn attention_info(q: &CubeTensor, k: &CubeTensor, q_start: usize, window: usize) -> burn::cubecl::server::Handle {
    let [batch, heads, q_len, head_dim] = q.meta.shape().dims::<4>();
    let [_, kv_heads, kv_len, _] = k.meta.shape().dims::<4>();
    let scale = 1.0 / (head_dim as f32).sqrt();
    info_buffer(q, &[batch, heads, kv_heads, q_len, kv_len, q_start, window, scale.to_bits() as usize])
}

/// Launches an element-wise kernel: one invocation per element of the (equally shaped) `inputs`,
/// bound in order, then `OUTPUTS` new tensors of that shape, then `info`: the element count
/// followed by `params`. At most 65535 workgroups go along x; the rest spill into y.
fn elementwise<const INPUTS: usize, const OUTPUTS: usize>(
    shader: Shader,
    inputs: [CubeTensor; INPUTS],
    params: &[usize],
) -> [CubeTensor; OUTPUTS] {
    let inputs = inputs.map(into_contiguous);
    check_f32(&inputs.each_ref());
    let first = &inputs[0];
    let shape = first.meta.shape().clone();
    let outputs: [CubeTensor; OUTPUTS] = std::array::from_fn(|_| empty_like(first, shape.clone()));
    let n = shape.num_elements();
    let info = info_buffer(first, &[&[n], params].concat());
    let buffers = inputs.iter().chain(&outputs).map(|t| t.handle.clone().binding()).chain([info.binding()]);
    launch_per_element(shader, first, n, buffers.collect());
    outputs
}

/// Launches a kernel of one invocation per element of an `n`-element result, in workgroups of
/// [`ROW_BLOCK`]: at most 65535 workgroups go along x; the rest spill into y.
fn launch_per_element(shader: Shader, on: &CubeTensor, n: usize, buffers: Vec<burn::cubecl::server::BufferBinding>) {
    let groups = n.div_ceil(ROW_BLOCK);
    let count = CubeCount::Static(groups.min(65535) as u32, groups.div_ceil(65535) as u32, 1);
    on.client.launch(row_kernel(shader), count, KernelArguments::new().with_buffers(buffers));
}

/// `a · Wᵀ` (`transposed`) or `a · W` for a packed `W` `[rows, cols]`: `a` is `[m, cols]` or
/// `[m, rows]` and the result `[m, rows]` or `[m, cols]`. One invocation per 16 × 16 block of the
/// result, as in the dense matmuls.
fn packed_product(
    a: CubeTensor,
    values: CubeTensor,
    params: CubeTensor,
    (rows, cols, bits): (usize, usize, usize),
    transposed: bool,
) -> CubeTensor {
    let (a, values, params) = (into_contiguous(a), into_contiguous(values), into_contiguous(params));
    check_f32(&[&a]);
    let m = a.meta.shape().dims::<2>()[0];
    let (k, n) = if transposed { (cols, rows) } else { (rows, cols) };
    assert!(k.is_multiple_of(4) && n.is_multiple_of(4), "a packed weight has sides in multiples of 4");
    assert_eq!(a.meta.shape().dims::<2>()[1], k, "the input's columns match the weight");
    let output = empty_like(&a, Shape::new([m, n]));
    let layout = crate::model::packed::PackedLayout { rows, cols, bits };
    let info = info_buffer(&a, &[m, k, n, layout.blocks_per_row(), layout.params_per_row(), layout.pair_words_per_row()]);
    let groups = (m.div_ceil(16) * n.div_ceil(16)).div_ceil(MATMUL_BLOCK);
    a.client.launch(
        launchable_in::<WgslMatmul>(wgsl::packed(transposed, bits)),
        CubeCount::Static(groups.min(65535) as u32, groups.div_ceil(65535) as u32, 1),
        KernelArguments::new().with_buffers(vec![
            a.handle.clone().binding(),
            values.handle.clone().binding(),
            params.handle.clone().binding(),
            output.handle.clone().binding(),
            info.binding(),
        ]),
    );
    output
}

/// `a · b` with the matmul `kernels::matmul` picks for the kernels' shape on this thread: the WGSL
/// kernel on software Vulkan, CubeCL's on GPUs.
fn product(a: CubeTensor, b: CubeTensor) -> CubeTensor {
    match kernel_shape() {
        KernelShape::Software => CubeBackend::fused_matmul(a, b),
        KernelShape::Hardware => CubeBackend::float_matmul(a, b),
    }
}

fn empty_like(reference: &CubeTensor, shape: Shape) -> CubeTensor {
    let handle = reference.client.empty(shape.num_elements() * DType::F32.size());
    CubeTensor::new_contiguous(reference.client.clone(), reference.device.clone(), shape, handle, DType::F32)
}

fn check_f32(tensors: &[&CubeTensor]) {
    for t in tensors {
        assert_eq!(t.dtype, DType::F32, "the fused kernels compute in f32");
    }
}

impl FusedKernels for CubeBackend {
    fn fused_attention(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        q_start: usize,
        window: usize,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let (q, k, v) = (into_contiguous(q), into_contiguous(k), into_contiguous(v));
        check_f32(&[&q, &k, &v]);
        let [batch, heads, q_len, head_dim] = q.meta.shape().dims::<4>();
        let output = empty_like(&q, q.meta.shape().clone());
        let lse = empty_like(&q, Shape::new([batch, heads, q_len]));
        let info = attention_info(&q, &k, q_start, window);
        let count = CubeCount::Static(q_len.div_ceil(BLOCK) as u32, (batch * heads) as u32, 1);
        q.client.launch(
            attention_kernel(AttentionPass::Forward, head_dim),
            count,
            KernelArguments::new().with_buffers(vec![
                q.handle.clone().binding(),
                k.handle.clone().binding(),
                v.handle.clone().binding(),
                output.handle.clone().binding(),
                lse.handle.clone().binding(),
                info.binding(),
            ]),
        );
        (output, lse)
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
        let (q, k, v) = (into_contiguous(q), into_contiguous(k), into_contiguous(v));
        let (grad, lse) = (into_contiguous(grad), into_contiguous(lse));
        check_f32(&[&q, &k, &v, &grad, &lse]);
        // delta_i = dO_i · O_i, one number per query row.
        let delta = Self::float_sum_dim(Self::float_mul(grad.clone(), output), 3);
        let delta = into_contiguous(delta);

        let [batch, heads, q_len, head_dim] = q.meta.shape().dims::<4>();
        let [_, kv_heads, kv_len, _] = k.meta.shape().dims::<4>();
        let grad_q = empty_like(&q, q.meta.shape().clone());
        // Both key/value gradients in one buffer, keys' first, so that the pass binds eight storage
        // buffers, WebGPU's default limit per stage.
        let grad_kv = empty_like(&k, [2, batch, kv_heads, kv_len, head_dim].into());
        let info = attention_info(&q, &k, q_start, window);

        q.client.launch(
            attention_kernel(AttentionPass::BackwardQuery, head_dim),
            CubeCount::Static(q_len.div_ceil(BLOCK) as u32, (batch * heads) as u32, 1),
            KernelArguments::new().with_buffers(vec![
                q.handle.clone().binding(),
                k.handle.clone().binding(),
                v.handle.clone().binding(),
                grad.handle.clone().binding(),
                lse.handle.clone().binding(),
                delta.handle.clone().binding(),
                grad_q.handle.clone().binding(),
                info.clone().binding(),
            ]),
        );
        q.client.launch(
            attention_kernel(AttentionPass::BackwardKeyValue, head_dim),
            CubeCount::Static(kv_len.div_ceil(BLOCK) as u32, (batch * kv_heads) as u32, 1),
            KernelArguments::new().with_buffers(vec![
                q.handle.clone().binding(),
                k.handle.clone().binding(),
                v.handle.clone().binding(),
                grad.handle.clone().binding(),
                lse.handle.clone().binding(),
                delta.handle.clone().binding(),
                grad_kv.handle.clone().binding(),
                info.binding(),
            ]),
        );
        let half = |i: usize| {
            let sliced = Self::float_slice(grad_kv.clone(), &[Slice::new(i as isize, Some(i as isize + 1), 1)]);
            Self::float_reshape(sliced, k.meta.shape().clone())
        };
        (grad_q, half(0), half(1))
    }

    fn fused_matmul(a: FloatTensor<Self>, b: FloatTensor<Self>) -> FloatTensor<Self> {
        let [m, k] = a.meta.shape().dims::<2>();
        let n = b.meta.shape().dims::<2>()[1];
        let f16 = b.dtype == DType::F16;
        if !k.is_multiple_of(4) || !n.is_multiple_of(4) || a.dtype != DType::F32 || !(f16 || b.dtype == DType::F32) {
            return Self::float_matmul(a, b);
        }
        let a = into_contiguous(a);
        // A transposed row-major `[n, k]` (strides `[1, k]`) is read where it lies.
        let transposed = n > 1 && k > 1 && b.meta.strides()[..] == [1, k];
        let b = if transposed { b } else { into_contiguous(b) };
        let output = empty_like(&a, Shape::new([m, n]));
        let info = info_buffer(&a, &[m, k, n]);
        // One invocation per 16 × 16 block of the output.
        let groups = (m.div_ceil(16) * n.div_ceil(16)).div_ceil(MATMUL_BLOCK);
        a.client.launch(
            launchable_in::<WgslMatmul>(wgsl::matmul(transposed, f16)),
            CubeCount::Static(groups.min(65535) as u32, groups.div_ceil(65535) as u32, 1),
            KernelArguments::new().with_buffers(vec![
                a.handle.clone().binding(),
                b.handle.clone().binding(),
                output.handle.clone().binding(),
                info.binding(),
            ]),
        );
        output
    }

    fn packed_matmul(
        x: FloatTensor<Self>,
        values: IntTensor<Self>,
        params: IntTensor<Self>,
        rows: usize,
        cols: usize,
        bits: usize,
    ) -> FloatTensor<Self> {
        packed_product(x, values, params, (rows, cols, bits), true)
    }

    fn packed_matmul_input_grad(
        grad: FloatTensor<Self>,
        values: IntTensor<Self>,
        params: IntTensor<Self>,
        rows: usize,
        cols: usize,
        bits: usize,
    ) -> FloatTensor<Self> {
        packed_product(grad, values, params, (rows, cols, bits), false)
    }

    fn cross_entropy_rows(logits: FloatTensor<Self>, targets: Vec<u32>) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let logits = into_contiguous(logits);
        check_f32(&[&logits]);
        let rows = logits.meta.shape().dims::<2>()[0];
        let (targets, info) = cross_entropy_inputs(&logits, &targets);
        let lse = empty_like(&logits, Shape::new([rows]));
        let nll = empty_like(&logits, Shape::new([rows]));
        logits.client.launch(
            row_kernel(CROSS_ENTROPY_ROWS),
            CubeCount::Static(rows as u32, 1, 1),
            KernelArguments::new().with_buffers(vec![
                logits.handle.clone().binding(),
                targets.binding(),
                lse.handle.clone().binding(),
                nll.handle.clone().binding(),
                info.binding(),
            ]),
        );
        (lse, nll)
    }

    fn cross_entropy_grad(logits: FloatTensor<Self>, lse: FloatTensor<Self>, targets: Vec<u32>) -> FloatTensor<Self> {
        let (logits, lse) = (into_contiguous(logits), into_contiguous(lse));
        check_f32(&[&logits, &lse]);
        let [rows, vocab] = logits.meta.shape().dims::<2>();
        let (targets, info) = cross_entropy_inputs(&logits, &targets);
        // The gradient overwrites the logits when no one else holds them.
        let grad = if logits.can_mut() { logits } else { <Self as FloatTensorOps<Self>>::float_add_scalar(logits, 0.0.into()) };
        grad.client.launch(
            row_kernel(CROSS_ENTROPY_GRAD),
            CubeCount::Static(vocab.div_ceil(ROW_BLOCK) as u32, rows as u32, 1),
            KernelArguments::new().with_buffers(vec![
                grad.handle.clone().binding(),
                targets.binding(),
                lse.handle.clone().binding(),
                info.binding(),
            ]),
        );
        grad
    }

    fn fused_cross_entropy(hidden: FloatTensor<Self>, head: FloatTensor<Self>, targets: Vec<u32>, chunk: usize) -> FloatTensor<Self> {
        super::cross_entropy::loss_only::<Self>(hidden, head, targets, chunk)
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
        let (x, weight) = (into_contiguous(x), into_contiguous(weight));
        check_f32(&[&x, &weight]);
        let rows = x.meta.shape().dims::<2>()[0];
        let output = empty_like(&x, x.meta.shape().clone());
        let inv_rms = empty_like(&x, Shape::new([rows]));
        let buffers = [&x, &weight, &output, &inv_rms].map(|t| t.handle.clone().binding());
        norm_rows(RMS_NORM_FORWARD, &x, buffers.into(), &[eps.to_bits() as usize]);
        (output, inv_rms)
    }

    fn fused_rms_norm_backward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        inv_rms: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let [x, weight, inv_rms, grad] = [x, weight, inv_rms, grad].map(into_contiguous);
        check_f32(&[&x, &weight, &inv_rms, &grad]);
        let dx = empty_like(&x, x.meta.shape().clone());
        let buffers = [&x, &weight, &inv_rms, &grad, &dx].map(|t| t.handle.clone().binding());
        norm_rows(RMS_NORM_BACKWARD, &x, buffers.into(), &[]);
        dx
    }

    fn fused_rotary(x: FloatTensor<Self>, cos: FloatTensor<Self>, sin: FloatTensor<Self>, inverse: bool) -> FloatTensor<Self> {
        let [_, heads, len, head_dim] = x.meta.shape().dims::<4>();
        let per_sequence = cos.meta.shape().dims::<3>()[0] > 1;
        let params = [head_dim, len, heads, per_sequence as usize, inverse as usize];
        let [output] = elementwise(ROTARY, [x, cos, sin], &params);
        output
    }

    fn fused_swiglu(gate: FloatTensor<Self>, up: FloatTensor<Self>) -> FloatTensor<Self> {
        let [output] = elementwise(SWIGLU_FORWARD, [gate, up], &[]);
        output
    }

    fn fused_swiglu_backward(
        gate: FloatTensor<Self>,
        up: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let [grad_gate, grad_up] = elementwise(SWIGLU_BACKWARD, [gate, up, grad], &[]);
        (grad_gate, grad_up)
    }

    fn fused_dropout(x: FloatTensor<Self>, seed: FloatTensor<Self>, keep: f32) -> FloatTensor<Self> {
        let (x, seed) = (into_contiguous(x), into_contiguous(seed));
        check_f32(&[&x, &seed]);
        let n = x.meta.shape().num_elements();
        let output = empty_like(&x, x.meta.shape().clone());
        let (threshold, scale) = super::dropout::keep_threshold(keep);
        let params = info_buffer(&x, &[n, threshold as usize, scale.to_bits() as usize]);
        let buffers = vec![x.handle.clone().binding(), seed.handle.clone().binding(), output.handle.clone().binding(), params.binding()];
        launch_per_element(DROPOUT, &x, n, buffers);
        output
    }

    fn fused_dropout_matmul(x: FloatTensor<Self>, seed: FloatTensor<Self>, a: FloatTensor<Self>, keep: f32) -> FloatTensor<Self> {
        product(dropout_any_shape::<Self>(x, seed, keep), a)
    }

    fn fused_dropout_matmul_backward(
        x: FloatTensor<Self>,
        seed: FloatTensor<Self>,
        a: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        keep: f32,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        dropout_matmul_grads::<Self>(x, seed, a, grad, keep, product)
    }

    fn fused_add_squares(t: FloatTensor<Self>, partials: FloatTensor<Self>, slot: usize) -> FloatTensor<Self> {
        let (t, partials) = (into_contiguous(t), into_contiguous(partials));
        check_f32(&[&t, &partials]);
        // The partial sums are written in place: into a copy of them where someone else holds them.
        let partials = if partials.can_mut() { partials } else { <Self as FloatTensorOps<Self>>::float_add_scalar(partials, 0.0.into()) };
        let n = t.meta.shape().num_elements();
        let count = super::squared_norm::slots(n);
        let info = info_buffer(&t, &[n, slot, count]);
        t.client.launch(
            row_kernel(SQUARED_NORM),
            CubeCount::Static(count as u32, 1, 1),
            KernelArguments::new().with_buffers(vec![t.handle.clone().binding(), partials.handle.clone().binding(), info.binding()]),
        );
        partials
    }

    fn fused_lora_update(
        base: FloatTensor<Self>,
        down: FloatTensor<Self>,
        b: FloatTensor<Self>,
        scale: f32,
        blocks: Vec<(usize, usize)>,
    ) -> FloatTensor<Self> {
        let tensor = Tensor::<2>::from_primitive::<Self>;
        let updated = lora_update_reference(tensor(base), tensor(down), tensor(b), scale, &blocks);
        updated.try_into_primitive::<Self>().expect("results stay on the wgpu backend")
    }

    fn fused_lora_update_backward(
        down: FloatTensor<Self>,
        b: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        scale: f32,
        blocks: Vec<(usize, usize)>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let tensor = Tensor::<2>::from_primitive::<Self>;
        let (grad_down, grad_b) = lora_update_backward_reference(tensor(down), tensor(b), tensor(grad), scale, &blocks);
        let primitive = |t: Tensor<2>| t.try_into_primitive::<Self>().expect("results stay on the wgpu backend");
        (primitive(grad_down), primitive(grad_b))
    }

    fn fused_adamw(
        param: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        m: FloatTensor<Self>,
        v: FloatTensor<Self>,
        coefficients: [f32; 8],
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        // The coefficients as their bits after the element count, in the one info buffer: with the
        // seven tensors that makes eight storage buffers, WebGPU's default limit per stage.
        let coefficients = coefficients.map(|c| c.to_bits() as usize);
        let [new_p, new_m, new_v] = elementwise(ADAMW, [param, grad, m, v], &coefficients);
        (new_p, new_m, new_v)
    }
}
