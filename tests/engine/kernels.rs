//! The fused WGSL kernels against their plain-tensor references on lavapipe, forward and
//! gradients, at awkward sizes (not multiples of the workgroup, length 1, windows, cached keys).

use burn::tensor::{Distribution, Tensor};
use wgtune::device::DeviceChoice;
use wgtune::kernels::{KernelShape, Scores, attention, attention_reference, hardware_launches, kernel_shape};

use crate::common::{DeviceRun, assert_close, device_runs, devices, values};

const TOL: f64 = 1e-4;

fn close(what: &str, a: Tensor<4>, b: Tensor<4>) {
    close_within(what, a, b, TOL);
}

fn close_within<const D: usize>(what: &str, a: Tensor<D>, b: Tensor<D>, tolerance: f64) {
    let (a, shape) = values(a);
    let (b, _) = values(b);
    assert_close(what, &a, &shape, &(shape.clone(), b.iter().map(|v| *v as f64).collect()), tolerance);
}

/// The summed next-token loss of `logits` `[rows, vocab]` at `targets`, in Burn's tensor
/// operations: what the fused losses are checked against.
fn generic_loss(logits: Tensor<2>, targets: &[u32]) -> Tensor<1> {
    let rows = targets.len();
    let log_probs = burn::tensor::activation::log_softmax(logits.clone(), 1);
    let index = Tensor::<2, burn::tensor::Int>::from_data(
        burn::tensor::TensorData::new(targets.iter().map(|&t| t as i64).collect(), [rows, 1]),
        &logits.device(),
    );
    log_probs.gather(1, index).sum().neg()
}

struct Case {
    batch: usize,
    heads: usize,
    kv_heads: usize,
    q_len: usize,
    /// Keys beyond the queries: a KV cache of this many earlier positions.
    cached: usize,
    head_dim: usize,
    window: Option<usize>,
}

const CASES: [Case; 7] = [
    Case { batch: 2, heads: 4, kv_heads: 2, q_len: 70, cached: 0, head_dim: 16, window: None },
    Case { batch: 1, heads: 3, kv_heads: 1, q_len: 1, cached: 0, head_dim: 64, window: None },
    Case { batch: 1, heads: 6, kv_heads: 3, q_len: 70, cached: 0, head_dim: 64, window: None },
    Case { batch: 2, heads: 2, kv_heads: 2, q_len: 5, cached: 37, head_dim: 32, window: None },
    Case { batch: 1, heads: 4, kv_heads: 1, q_len: 67, cached: 3, head_dim: 128, window: Some(9) },
    // A window narrower than a workgroup's block of rows: blocks skip keys (and queries) no row sees.
    Case { batch: 1, heads: 2, kv_heads: 1, q_len: 150, cached: 0, head_dim: 8, window: Some(5) },
    // Gemma's head dimension: the hardware shape on every adapter, in its smallest tiles (7 keys).
    Case { batch: 1, heads: 2, kv_heads: 1, q_len: 21, cached: 2, head_dim: 256, window: Some(9) },
];

#[test]
fn fused_attention_matches_the_reference_forward_and_backward() {
    // On wgpu the WGSL kernels; on the CPU the tensor-op forward with the log-sum-exp and its
    // backward from it.
    for run in device_runs() {
        let before = hardware_launches();
        for (i, c) in CASES.iter().enumerate() {
            attention_case_matches(&run, c, i);
        }
        if run.dev.choice == DeviceChoice::Wgpu && kernel_shape() == KernelShape::Hardware {
            assert!(hardware_launches() > before, "{}: no hardware-shaped kernel ran", run.label);
        }
    }
}

fn attention_case_matches(run: &DeviceRun, c: &Case, i: usize) {
    let device = run.dev.autodiff();
    let kv_len = c.q_len + c.cached;
    let random = |shape: [usize; 4]| Tensor::<4>::random(shape, Distribution::Normal(0.0, 1.0), &device);
    let q = random([c.batch, c.heads, c.q_len, c.head_dim]);
    let k = random([c.batch, c.kv_heads, kv_len, c.head_dim]);
    let v = random([c.batch, c.kv_heads, kv_len, c.head_dim]);
    let weights = random([c.batch, c.heads, c.q_len, c.head_dim]);

    let scores = Scores { start: c.cached, window: c.window, ..Scores::default() };
    let attend = |fused: bool| {
        let (q, k, v) = (q.clone().require_grad(), k.clone().require_grad(), v.clone().require_grad());
        let out = if fused {
            attention(q.clone(), k.clone(), v.clone(), &scores, true)
        } else {
            attention_reference(q.clone(), k.clone(), v.clone(), &scores)
        };
        let grads = (out.clone() * weights.clone()).sum().backward();
        let grad = |t: &Tensor<4>| t.grad(&grads).expect("a gradient");
        (out.inner(), grad(&q), grad(&k), grad(&v))
    };
    let (fused, reference) = (attend(true), attend(false));
    let what = |part: &str| format!("{}, case {i}: {part}", run.label);
    close(&what("output"), fused.0, reference.0);
    close(&what("grad q"), fused.1, reference.1);
    close(&what("grad k"), fused.2, reference.2);
    close(&what("grad v"), fused.3, reference.3);
}

#[test]
fn fused_cross_entropy_matches_the_generic_loss_and_gradients() {
    use wgtune::kernels::cross_entropy;
    for dev in devices() {
        let device = dev.autodiff();
        for (rows, dim, vocab, chunk) in [(37, 24, 1000, 10), (3, 16, 50_001, 2), (1, 8, 7, 1)] {
            let hidden = Tensor::<2>::random([rows, dim], Distribution::Normal(0.0, 1.0), &device);
            let head = Tensor::<2>::random([dim, vocab], Distribution::Normal(0.0, 0.5), &device);
            let targets: Vec<u32> = (0..rows).map(|i| ((i * 7919 + 3) % vocab) as u32).collect();
            let run = |fused: bool| {
                let (h, w) = (hidden.clone().require_grad(), head.clone().require_grad());
                let loss = if fused {
                    cross_entropy(h.clone(), w.clone(), &targets, chunk)
                } else {
                    generic_loss(h.clone().matmul(w.clone()), &targets)
                };
                // A scale on the loss checks that backward multiplies by the upstream gradient.
                let grads = loss.clone().mul_scalar(0.5).backward();
                (loss.inner(), h.grad(&grads).unwrap(), w.grad(&grads).unwrap())
            };
            let (fused, generic) = (run(true), run(false));
            let what = format!("{} rows {rows} vocab {vocab}", dev.choice);
            close_within(&format!("{what}: loss"), fused.0, generic.0, 1e-3);
            close_within(&format!("{what}: grad hidden"), fused.1, generic.1, TOL);
            close_within(&format!("{what}: grad head"), fused.2, generic.2, TOL);
        }
    }
}

/// The loss through a frozen head in blocks of columns (one too large for a storage binding)
/// against the generic loss through the whole head: the loss and the hidden states' gradient.
#[test]
fn the_loss_through_a_head_in_blocks_matches_the_whole_heads() {
    use wgtune::kernels::cross_entropy_blocks;
    for dev in devices() {
        let device = dev.autodiff();
        let (rows, dim, widths, chunk) = (13, 16, [40, 40, 17], 4);
        let vocab: usize = widths.iter().sum();
        let hidden = Tensor::<2>::random([rows, dim], Distribution::Normal(0.0, 1.0), &device);
        let blocks: Vec<Tensor<2>> = widths.iter().map(|&w| Tensor::random([dim, w], Distribution::Normal(0.0, 0.5), &device)).collect();
        let targets: Vec<u32> = (0..rows).map(|i| ((i * 7919 + 3) % vocab) as u32).collect();
        let run = |blocked: bool| {
            let h = hidden.clone().require_grad();
            let loss = if blocked {
                cross_entropy_blocks(h.clone(), &blocks, &targets, chunk)
            } else {
                generic_loss(h.clone().matmul(Tensor::cat(blocks.clone(), 1)), &targets)
            };
            // A scale on the loss checks that the gradient follows the upstream one.
            let grads = loss.clone().mul_scalar(0.5).backward();
            (loss.inner(), h.grad(&grads).unwrap())
        };
        let (blocked, whole) = (run(true), run(false));
        let what = dev.choice.to_string();
        close_within(&format!("{what}: loss"), blocked.0, whole.0, 1e-3);
        close_within(&format!("{what}: grad hidden"), blocked.1, whole.1, TOL);
    }
}

/// The fused AdamW step (the WGSL kernel; on the CPU one pass on every core, in place) against
/// Burn's tensor operations, first step (no moments) and a later one.
#[test]
fn fused_adamw_matches_the_reference() {
    use wgtune::kernels::{AdamWStep, adamw, adamw_reference};
    let step = AdamWStep { lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-6, decay: 1.0 - 1e-4, bias1: 0.19, bias2: 0.003, grad_scale: 0.7 };
    // 70_001 elements: not a multiple of the workgroup, more than one row of workgroups, and more
    // than one chunk of the CPU pass.
    for (dev, n) in devices().into_iter().flat_map(|dev| [1, 255, 70_001].map(|n| (dev.clone(), n))) {
        let random = || Tensor::<1>::random([n], Distribution::Normal(0.0, 1.0), &dev.device);
        let (p, g, m) = (random(), random(), random());
        let v = random().abs();
        for moments in [None, Some((m.clone(), v.clone()))] {
            let fused = adamw(p.clone(), g.clone(), moments.clone(), &step, true);
            let reference = adamw_reference(p.clone(), g.clone(), moments, &step);
            for (name, a, b) in [
                ("param", fused.0.clone(), reference.0.clone()),
                ("m", fused.1.clone(), reference.1.clone()),
                ("v", fused.2.clone(), reference.2.clone()),
            ] {
                close_within(&format!("{} n {n}: {name}", dev.choice), a, b, 1e-5);
            }
        }
    }
}

#[test]
fn fused_swiglu_matches_the_reference_forward_and_backward() {
    use burn::tensor::activation::silu;
    use wgtune::kernels::swiglu;
    for dev in devices() {
        let device = dev.autodiff();
        // Not multiples of the workgroup; one element; large gates where σ saturates.
        for (shape, scale) in [([1, 1, 1], 1.0), ([2, 5, 37], 3.0), ([3, 7, 1531], 12.0)] {
            let what = format!("{} {shape:?}", dev.choice);
            let random = |s: f64| Tensor::<3>::random(shape, Distribution::Normal(0.0, s), &device);
            let (gate, up, weights) = (random(scale).require_grad(), random(1.0).require_grad(), random(1.0));

            let fused = swiglu(gate.clone(), up.clone(), true);
            let fused_grads = (fused.clone() * weights.clone()).sum().backward();
            let reference = silu(gate.clone()) * up.clone();
            let reference_grads = (reference.clone() * weights.clone()).sum().backward();
            let as_4d = |t: Tensor<3>| t.unsqueeze::<4>();
            close(&format!("{what}: output"), as_4d(fused), as_4d(reference));
            let (fused_gate, reference_gate) = (gate.grad(&fused_grads).unwrap(), gate.grad(&reference_grads).unwrap());
            close(&format!("{what}: grad gate"), as_4d(fused_gate), as_4d(reference_gate));
            let (fused_up, reference_up) = (up.grad(&fused_grads).unwrap(), up.grad(&reference_grads).unwrap());
            close(&format!("{what}: grad up"), as_4d(fused_up), as_4d(reference_up));
        }
    }
}

/// The fused RMSNorm against the tensor-op one, output and the gradients for the input and the
/// weight: rows narrower and wider than a workgroup, one element, and rows of very different
/// scales (the per-row `1/rms` must be each row's own).
#[test]
fn fused_rms_norm_matches_the_reference_forward_and_backward() {
    use wgtune::kernels::{rms_norm, rms_norm_reference};
    for dev in devices() {
        let device = dev.autodiff();
        for shape in [[1, 1, 1], [2, 5, 37], [3, 7, 1531], [1, 70, 576]] {
            let what = format!("{} {shape:?}", dev.choice);
            let random = |shape: [usize; 3], std: f64| Tensor::<3>::random(shape, Distribution::Normal(0.0, std), &device);
            let row_scales = Tensor::<3>::random([shape[0], shape[1], 1], Distribution::Uniform(0.1, 10.0), &device);
            let x = (random(shape, 1.0) * row_scales).require_grad();
            let weight = Tensor::<1>::random([shape[2]], Distribution::Normal(1.0, 0.5), &device).require_grad();
            let weights = random(shape, 1.0);

            let run = |fused: bool| {
                let output = if fused {
                    rms_norm(x.clone(), weight.clone(), 1e-5, true)
                } else {
                    rms_norm_reference(x.clone(), weight.clone(), 1e-5)
                };
                let grads = (output.clone() * weights.clone()).sum().backward();
                (output.inner(), x.grad(&grads).expect("a gradient for x"), weight.grad(&grads).expect("a gradient for the weight"))
            };
            let ((output, grad_x, grad_weight), (reference, reference_x, reference_weight)) = (run(true), run(false));
            let as_4d = |t: Tensor<3>| t.unsqueeze::<4>();
            close(&format!("{what}: output"), as_4d(output), as_4d(reference));
            close(&format!("{what}: grad x"), as_4d(grad_x), as_4d(reference_x));
            let vector = |t: Tensor<1>| t.unsqueeze::<4>();
            close(&format!("{what}: grad weight"), vector(grad_weight), vector(reference_weight));
        }
    }
}

/// The fused rotary embedding against transformers' `x·cos + rotate_half(x)·sin` in tensor
/// operations, output and input gradient: one table for every sequence and one per sequence (a
/// left-padded batch), and the queries as the model hands them over, a view with the heads
/// swapped in (not contiguous).
#[test]
fn fused_rotary_matches_the_reference_forward_and_backward() {
    use wgtune::kernels::{rotary, rotary_reference};
    for dev in devices() {
        let device = dev.autodiff();
        for ([batch, heads, len, head_dim], tables, swapped) in
            [([1, 1, 1, 2], 1, false), ([2, 3, 5, 8], 1, false), ([2, 3, 5, 8], 2, true), ([2, 9, 70, 64], 2, true)]
        {
            let what = format!("{} {:?}, tables {tables}, swapped {swapped}", dev.choice, [batch, heads, len, head_dim]);
            // RoPE's tables: the two halves of each row alike.
            let half = |distribution| Tensor::<3>::random([tables, len, head_dim / 2], distribution, &device);
            let (cos, sin) = (half(Distribution::Uniform(-1.0, 1.0)), half(Distribution::Uniform(-1.0, 1.0)));
            let (cos, sin) = (Tensor::cat(vec![cos.clone(), cos], 2), Tensor::cat(vec![sin.clone(), sin], 2));
            let leaf = if swapped {
                Tensor::<4>::random([batch, len, heads, head_dim], Distribution::Normal(0.0, 1.0), &device).require_grad()
            } else {
                Tensor::<4>::random([batch, heads, len, head_dim], Distribution::Normal(0.0, 1.0), &device).require_grad()
            };
            let weights = Tensor::<4>::random([batch, heads, len, head_dim], Distribution::Normal(0.0, 1.0), &device);

            let run = |fused: bool| {
                // Each backward pass consumes the graph up to the leaf: the swap is made anew.
                let x = if swapped { leaf.clone().swap_dims(1, 2) } else { leaf.clone() };
                let output = if fused { rotary(x, &cos, &sin, true) } else { rotary_reference(x, &cos, &sin) };
                let grads = (output.clone() * weights.clone()).sum().backward();
                (output.inner(), leaf.grad(&grads).expect("a gradient for x"))
            };
            let ((output, grad), (reference, reference_grad)) = (run(true), run(false));
            close(&format!("{what}: output"), output, reference);
            close(&format!("{what}: grad x"), grad, reference_grad);
        }
    }
}

/// The fused squared global norm against the sum in f64 on the host: one element, a workgroup's
/// worth, a few slots, and a tensor past the most slots one tensor gets (each slot then takes more
/// than its share). Burn's own square-and-sum is no reference at this size: on SwiftShader its
/// reduction loses 0.4 % over 17M elements.
#[test]
fn fused_squared_norm_matches_the_reference() {
    use wgtune::kernels::squared_norm;
    // Gradients live outside autodiff; the operation takes autodiff tensors too.
    for (dev, device) in devices().into_iter().flat_map(|dev| [(dev.choice, dev.device.clone()), (dev.choice, dev.autodiff())]) {
        let sizes = [1, 256, 9216, 50_000, 17_000_000];
        let tensors: Vec<Tensor<1>> = sizes.iter().map(|&n| Tensor::<1>::random([n], Distribution::Normal(0.0, 1.0), &device)).collect();
        let host_sums: Vec<f64> =
            tensors.iter().map(|t| t.to_data().try_to_vec::<f32>().unwrap().iter().map(|&v| v as f64 * v as f64).sum()).collect();
        for count in [1, 3, sizes.len()] {
            let what = format!("{dev} {:?}", &sizes[..count]);
            let fused = squared_norm(tensors[..count].to_vec(), true).expect("a norm").into_scalar::<f32>() as f64;
            let reference: f64 = host_sums[..count].iter().sum();
            assert!((fused - reference).abs() <= 1e-5 * reference, "{what}: fused {fused}, reference {reference}");
        }
        assert!(squared_norm(Vec::new(), true).is_none());
    }
}

/// The WGSL matmul (`shaders/matmul*.wgsl`) against Burn's, forward and both gradients, with `b`
/// as stored and as a transposed view (the two kernels), in f32 and f16, at sizes that are not
/// multiples of its 16 × 16 blocks, a single row, and the smallest `k` and `n` it takes.
#[test]
fn fused_matmul_matches_burns_forward_and_backward() {
    use burn::backend::Dispatch;
    use burn::tensor::DType;
    use wgtune::kernels::FusedKernels;
    let Some(dev) = devices().into_iter().find(|d| d.choice == DeviceChoice::Wgpu) else {
        return;
    };
    let device = dev.autodiff();
    let shapes = [(37, 24, 20), (1, 64, 48), (70, 4, 4), (33, 576, 192), (130, 36, 100)];
    // f16 weights where the adapter computes in f16 (SwiftShader does not; the engine refuses
    // `--precision f16` there).
    let halves: &[bool] = if dev.supports_f16 { &[false, true] } else { &[false] };
    let cases = shapes.into_iter().flat_map(|s| halves.iter().flat_map(move |&half| [(s, false, half), (s, true, half)]));
    for ((m, k, n), transposed, half) in cases {
        let random = |shape: [usize; 2]| Tensor::<2>::random(shape, Distribution::Normal(0.0, 1.0), &device);
        let (a, weights) = (random([m, k]), random([m, n]));
        let b = if transposed { random([n, k]).transpose() } else { random([k, n]) };
        // An f16 `b` (a weight stored in half precision) against its exact value in f32.
        let b = if half { b.cast(DType::F16) } else { b };
        let run = |fused: bool| {
            let (a, b) = (a.clone().require_grad(), b.clone().require_grad());
            let out = if fused {
                Tensor::<2>::from_dispatch(Dispatch::fused_matmul(a.clone().into_dispatch(), b.clone().into_dispatch()))
            } else {
                a.clone().matmul(b.clone().cast(DType::F32))
            };
            let grads = (out.clone() * weights.clone()).sum().backward();
            (out.inner(), a.grad(&grads).expect("a gradient"), b.grad(&grads).expect("a gradient"))
        };
        let (fused, reference) = (run(true), run(false));
        let what = format!("{m} x {k} x {n}, b transposed: {transposed}, in f16: {half}");
        assert_eq!(fused.0.dtype(), DType::F32, "{what}");
        for (name, x, y) in [("output", fused.0, reference.0), ("grad a", fused.1, reference.1), ("grad b", fused.2, reference.2)] {
            let (x, shape) = values(x.unsqueeze::<4>());
            let (y, _) = values(y.unsqueeze::<4>());
            // The reference rounds an f16 `b`'s gradient to f16: 11 significant bits.
            let largest = y.iter().fold(1.0f32, |m, v| m.max(v.abs())) as f64;
            let tolerance = if half && name == "grad b" { 1e-3 * largest } else { 1e-3 };
            assert_close(&format!("{what}: {name}"), &x, &shape, &(shape.clone(), y.iter().map(|v| *v as f64).collect()), tolerance);
        }
    }
}

/// The matmuls over a packed base (`shaders/packed_matmul*.wgsl` on lavapipe, the dequantizing
/// fallback on the CPU) against a dense f32 matmul of the same weight dequantized: the forward
/// product and the input gradient, int8 and int4, at sizes that are not multiples of the 16 × 16
/// blocks or of the 32-number quantization blocks, a single row, and the smallest sides taken.
/// The weight gets no gradient: it is frozen, and nothing of it is kept dense.
#[test]
fn packed_matmul_matches_a_dense_matmul_of_the_dequantized_weight() {
    use wgtune::kernels::{dense_packed, packed_matmul};
    use wgtune::model::PackedWeight;
    use wgtune::model::packed::HostPacked;
    for dev in devices() {
        let device = dev.autodiff();
        // Rows of one block, of nine (two super-blocks, an odd count of sub-scale pairs), of 18.
        let shapes = [(37, 40, 20), (1, 64, 48), (70, 4, 4), (33, 576, 196), (130, 100, 36), (9, 280, 24)];
        for ((m, cols, rows), bits) in shapes.into_iter().flat_map(|s| [(s, 8), (s, 4)]) {
            let what = format!("{}: x [{m}, {cols}] · W [{rows}, {cols}]ᵀ in int{bits}", dev.choice);
            let host_w: Vec<f32> =
                Tensor::<2>::random([rows, cols], Distribution::Normal(0.0, 0.5), &dev.device).into_data().try_to_vec::<f32>().unwrap();
            let host = HostPacked::quantize(&host_w, rows, cols, bits);
            let packed = PackedWeight::to_device(&host, &device);
            assert_eq!(packed.to_host(), host, "{what}: the words survive the trip to the device");
            let x = Tensor::<2>::random([m, cols], Distribution::Normal(0.0, 1.0), &device);
            let weights = Tensor::<2>::random([m, rows], Distribution::Normal(0.0, 1.0), &device);
            let run = |packed_path: bool| {
                let x = x.clone().require_grad();
                let out = if packed_path {
                    packed_matmul(x.clone(), &packed)
                } else {
                    x.clone().matmul(dense_packed(&host, &device).transpose())
                };
                let grads = (out.clone() * weights.clone()).sum().backward();
                (out.inner(), x.grad(&grads).expect("a gradient for x"))
            };
            let (ours, reference) = (run(true), run(false));
            for (name, a, b) in [("output", ours.0, reference.0), ("grad x", ours.1, reference.1)] {
                close_within(&format!("{what}: {name}"), a, b, 1e-3);
            }
        }
    }
}

/// The chunked loss through a packed head (the output projection of a packed base) gives the
/// loss and hidden-state gradient of the dense loss through the dequantized head; the head gets
/// no gradient. A packed embedding looks up the dequantized rows.
#[test]
fn a_packed_head_and_embedding_match_their_dequantized_matrices() {
    use wgtune::kernels::{cross_entropy, cross_entropy_packed, dense_packed};
    use wgtune::model::packed::HostPacked;
    use wgtune::model::{Embedding, PackedWeight};
    for dev in devices() {
        let device = dev.autodiff();
        let (rows, vocab, dim) = (23, 96, 64);
        for bits in [8, 4] {
            let what = format!("{}: int{bits} head [{vocab}, {dim}]", dev.choice);
            let w: Vec<f32> =
                Tensor::<2>::random([vocab, dim], Distribution::Normal(0.0, 0.5), &dev.device).into_data().try_to_vec().unwrap();
            let host = HostPacked::quantize(&w, vocab, dim, bits);
            let packed = PackedWeight::to_device(&host, &device);
            let hidden = Tensor::<2>::random([rows, dim], Distribution::Normal(0.0, 1.0), &device);
            let targets: Vec<u32> = (0..rows as u32).map(|r| (r * 37) % vocab as u32).collect();
            let run = |packed_path: bool| {
                let h = hidden.clone().require_grad();
                let loss = if packed_path {
                    cross_entropy_packed(h.clone(), &packed, &targets, 5)
                } else {
                    cross_entropy(h.clone(), dense_packed(&host, &device).transpose(), &targets, 5)
                };
                let grads = loss.clone().mul_scalar(0.5).backward();
                (loss.inner(), h.grad(&grads).expect("a gradient for the hidden states"))
            };
            let (ours, reference) = (run(true), run(false));
            close_within(&format!("{what}: loss"), ours.0, reference.0, 1e-3);
            close_within(&format!("{what}: grad hidden"), ours.1, reference.1, 1e-4);

            let embedding = Embedding::packed(host.clone(), false, &dev.device);
            assert!(embedding.packed.is_none(), "untied: nothing of the table on the device");
            let ids = [5i64, 0, 95, 5];
            let looked_up = embedding.host.as_ref().unwrap().rows(&ids);
            let dense = host.dequantize();
            let expected: Vec<f32> = ids.iter().flat_map(|&r| dense[r as usize * dim..(r as usize + 1) * dim].to_vec()).collect();
            assert_eq!(looked_up, expected, "{what}: looked-up rows");
        }
    }
}

/// One product cut into pieces (`kernels::split_columns`, the shared base of q, k and v) against
/// Burn's `narrow`: the same pieces, and, with each piece flowing on through an operation of its
/// own, the same gradient for the product's input; untracked, the same pieces too.
#[test]
fn split_columns_matches_narrow_forward_and_backward() {
    use wgtune::kernels::split_columns;
    for run in device_runs() {
        let device = run.dev.autodiff();
        for widths in [vec![576, 192, 192], vec![5, 1, 7], vec![16, 16]] {
            let n: usize = widths.iter().sum();
            let random = |shape: [usize; 2], std: f64| Tensor::<2>::random(shape, Distribution::Normal(0.0, std), &device);
            let (x, w) = (random([37, 24], 1.0), random([24, n], 0.2));
            let weights: Vec<Tensor<2>> = widths.iter().map(|&width| random([37, width], 1.0)).collect();
            let forward = |fused: bool| {
                let x = x.clone().require_grad();
                let pieces = split_columns(x.clone().matmul(w.clone()), &widths, fused);
                // A different path per piece, as q, k and v take: scaled, squared, as they are.
                let loss = pieces
                    .iter()
                    .zip(&weights)
                    .enumerate()
                    .map(|(i, (piece, weight))| match i % 3 {
                        0 => (piece.clone().mul_scalar(2.0) * weight.clone()).sum(),
                        1 => (piece.clone().powf_scalar(2.0) * weight.clone()).sum(),
                        _ => (piece.clone() * weight.clone()).sum(),
                    })
                    .reduce(|a, b| a + b)
                    .expect("pieces");
                let grads = loss.backward();
                (pieces.into_iter().map(|p| p.inner()).collect::<Vec<_>>(), x.grad(&grads).expect("a gradient for x"))
            };
            let ((pieces, grad), (reference_pieces, reference_grad)) = (forward(true), forward(false));
            let what = format!("{} widths {widths:?}", run.label);
            assert_eq!(pieces.len(), widths.len(), "{what}");
            for (i, (piece, reference)) in pieces.into_iter().zip(reference_pieces).enumerate() {
                assert_eq!(piece.dims(), [37, widths[i]], "{what}: piece {i}");
                close(&format!("{what}: piece {i}"), piece.unsqueeze::<4>(), reference.unsqueeze::<4>());
            }
            close(&format!("{what}: grad x"), grad.unsqueeze::<4>(), reference_grad.unsqueeze::<4>());

            let untracked = split_columns(x.clone().inner().matmul(w.clone().inner()), &widths, true);
            let last = untracked.last().expect("pieces").clone();
            let reference = x.clone().inner().matmul(w.clone().inner()).narrow(1, n - widths[widths.len() - 1], widths[widths.len() - 1]);
            close(&format!("{what}: untracked last piece"), last.unsqueeze::<4>(), reference.unsqueeze::<4>());
        }
    }
}

/// The base product handed to `add_lora_updates`: fresh, as the model's are (the update may go into
/// its memory), or the leaf's own memory (it must not), as it is or transposed.
#[derive(Clone, Copy, PartialEq)]
enum Base {
    Fresh,
    HeldElsewhere,
    TransposedView,
}

struct LoraCase {
    name: &'static str,
    /// Each projection's width, and whether it has an adapter.
    projections: Vec<(usize, bool)>,
    dropout: f64,
    base: Base,
}

/// LoRA's updates of projections that share an input, added to their base products side by side
/// (`kernels::add_lora_updates`; on the CPU one operation that accumulates into the base product;
/// on wgpu, with dropout, one product that drops its input out again in the backward pass, in
/// either kernel shape) against one projection at a time in Burn's operations: the outputs, and the gradients of the
/// input, of every `a` and `b`, and of the base product. Cases: three adapted projections (q, k,
/// v), one left without an adapter between two that have one, one projection alone, dropout (a
/// mask per adapter: the reference draws them through `kernels::dropout` in the same order after
/// the same `seed_dropout`), and a base product that is a tensor held elsewhere, or a transposed view of
/// one, which must come out unchanged.
#[test]
fn lora_updates_match_one_projection_at_a_time_forward_and_backward() {
    use wgtune::kernels::{LoraFactors, add_lora_updates, dropout as drop_out, seed_dropout};
    for run in device_runs() {
        let device = run.dev.autodiff();
        let cases = [
            LoraCase { name: "q, k, v", projections: vec![(24, true), (8, true), (8, true)], dropout: 0.0, base: Base::Fresh },
            LoraCase {
                name: "middle without adapter",
                projections: vec![(5, true), (7, false), (3, true)],
                dropout: 0.0,
                base: Base::Fresh,
            },
            LoraCase { name: "one projection", projections: vec![(19, true)], dropout: 0.0, base: Base::Fresh },
            LoraCase { name: "dropout", projections: vec![(6, true), (9, true)], dropout: 0.3, base: Base::Fresh },
            LoraCase { name: "base held elsewhere", projections: vec![(11, true), (4, true)], dropout: 0.0, base: Base::HeldElsewhere },
            LoraCase { name: "base a transposed view", projections: vec![(11, true), (4, true)], dropout: 0.0, base: Base::TransposedView },
        ];
        for LoraCase { name, projections, dropout, base: base_kind } in cases {
            let what = format!("{}: {name}", run.label);
            let (rows, d_in, rank) = (37, 12, 3);
            let n: usize = projections.iter().map(|(width, _)| width).sum();
            let random = |shape: [usize; 2], std: f64| Tensor::<2>::random(shape, Distribution::Normal(0.0, std), &device);
            let x = random([rows, d_in], 1.0).require_grad();
            let transposed = base_kind == Base::TransposedView;
            let base_leaf = if transposed { random([n, rows], 1.0) } else { random([rows, n], 1.0) }.require_grad();
            let factors: Vec<Option<(Tensor<2>, Tensor<2>)>> = projections
                .iter()
                .map(|&(width, adapted)| {
                    adapted.then(|| (random([d_in, rank], 0.5).require_grad(), random([rank, width], 0.5).require_grad()))
                })
                .collect();
            let weights: Vec<Tensor<2>> = projections.iter().map(|&(width, _)| random([rows, width], 1.0)).collect();
            // A copy of the values, not of the handle to them.
            let base_before = Tensor::<2>::from_data(base_leaf.to_data(), &device).inner();

            // `fused`: through `add_lora_updates`; else one projection at a time in Burn's operations.
            let run = |fused: bool| {
                seed_dropout(11);
                let base = match base_kind {
                    Base::Fresh => base_leaf.clone().mul_scalar(1.0),
                    Base::HeldElsewhere => base_leaf.clone(),
                    Base::TransposedView => base_leaf.clone().transpose(),
                };
                let given: Vec<(usize, Option<LoraFactors>)> = projections
                    .iter()
                    .zip(&factors)
                    .map(|(&(width, _), f)| (width, f.as_ref().map(|(a, b)| LoraFactors { a: a.clone(), b: b.clone(), scale: 1.75 })))
                    .collect();
                let outputs = if fused {
                    add_lora_updates(x.clone(), base, &given, dropout, true)
                } else {
                    let mut start = 0;
                    let mut outputs = Vec::new();
                    for (width, factors) in &given {
                        let base = base.clone().narrow(1, start, *width);
                        outputs.push(match factors {
                            Some(LoraFactors { a, b, scale }) => {
                                base + drop_out(x.clone(), dropout, true).matmul(a.clone()).mul_scalar(*scale).matmul(b.clone())
                            }
                            None => base,
                        });
                        start += width;
                    }
                    outputs
                };
                let loss = outputs.iter().zip(&weights).map(|(y, w)| (y.clone() * w.clone()).sum()).reduce(|a, b| a + b).expect("outputs");
                let grads = loss.backward();
                let factor_grads: Vec<Option<(Tensor<2>, Tensor<2>)>> = factors
                    .iter()
                    .map(|f| {
                        f.as_ref().map(|(a, b)| (a.grad(&grads).expect("a gradient for a"), b.grad(&grads).expect("a gradient for b")))
                    })
                    .collect();
                let grad_x = x.grad(&grads).expect("a gradient for x");
                let grad_base = base_leaf.grad(&grads).expect("a gradient for the base");
                (outputs.into_iter().map(|y| y.inner()).collect::<Vec<_>>(), grad_x, grad_base, factor_grads)
            };
            let (fused, reference) = (run(true), run(false));
            let as_4d = |t: Tensor<2>| t.unsqueeze::<4>();
            assert_eq!(fused.0.len(), projections.len(), "{what}: one output per projection");
            for (j, ((y, reference_y), &(width, _))) in fused.0.into_iter().zip(reference.0).zip(&projections).enumerate() {
                assert_eq!(y.dims(), [rows, width], "{what}: output {j}");
                close(&format!("{what}: output {j}"), as_4d(y), as_4d(reference_y));
            }
            close(&format!("{what}: grad x"), as_4d(fused.1), as_4d(reference.1));
            close(&format!("{what}: grad base"), as_4d(fused.2), as_4d(reference.2));
            for (j, (ours, theirs)) in fused.3.into_iter().zip(reference.3).enumerate() {
                if let (Some((a, b)), Some((reference_a, reference_b))) = (ours, theirs) {
                    close(&format!("{what}: grad a {j}"), as_4d(a), as_4d(reference_a));
                    close(&format!("{what}: grad b {j}"), as_4d(b), as_4d(reference_b));
                }
            }
            close(&format!("{what}: the base's own tensor"), as_4d(base_leaf.clone().inner()), as_4d(base_before));
        }
    }
}

/// Dropout as one pass (`kernels::dropout`, its mask a hash of index and seed): every element kept
/// as `x / keep` or zeroed, the share kept within 1 % of `keep` (some 0.2 M elements), the same
/// mask again after the dropout seeds are reseeded (as a resumed run or a recomputed layer reseeds
/// them) and another without, and the backward pass through the same mask.
#[test]
fn fused_dropout_keeps_its_share_and_one_mask_both_ways() {
    use wgtune::kernels::{dropout, seed_dropout};
    for dev in devices() {
        let device = dev.autodiff();
        for probability in [0.05, 0.5] {
            let (keep, what) = (1.0 - probability, format!("{} p {probability}", dev.choice));
            let shape = [701, 300];
            let x = Tensor::<2>::random(shape, Distribution::Uniform(0.5, 1.5), &device).require_grad();
            let weights = Tensor::<2>::random(shape, Distribution::Normal(0.0, 1.0), &device);
            seed_dropout(7);
            let y = dropout(x.clone(), probability, true);
            let grads = (y.clone() * weights.clone()).sum().backward();
            let grad = x.grad(&grads).expect("a gradient for x");
            let ((ys, _), (xs, _), (ws, _), (gs, _)) =
                (values(y.inner()), values(x.clone().inner()), values(weights.inner()), values(grad));
            let mut kept = 0;
            for i in 0..xs.len() {
                let scale = (1.0 / keep) as f32;
                if ys[i] != 0.0 {
                    kept += 1;
                    assert!((ys[i] - xs[i] * scale).abs() <= 1e-6 * ys[i].abs(), "{what}: element {i} kept as {} for {}", ys[i], xs[i]);
                    assert!((gs[i] - ws[i] * scale).abs() <= 1e-5, "{what}: gradient {i} is {} for weight {}", gs[i], ws[i]);
                } else {
                    assert_eq!(gs[i], 0.0, "{what}: gradient {i} of a dropped element");
                }
            }
            let share = kept as f64 / xs.len() as f64;
            assert!((share - keep).abs() < 0.01, "{what}: kept {share} of the elements, not {keep}");

            let mask = |t: Tensor<2>| values(t.inner()).0.iter().map(|v| *v != 0.0).collect::<Vec<_>>();
            seed_dropout(7);
            let again = dropout(x.clone(), probability, true);
            assert!(mask(again) == ys.iter().map(|v| *v != 0.0).collect::<Vec<_>>(), "{what}: another mask from the same seed");
            let other = dropout(x.clone(), probability, true);
            assert!(mask(other) != ys.iter().map(|v| *v != 0.0).collect::<Vec<_>>(), "{what}: the same mask from the next seed");
        }
    }
}

/// The dropout mask is the same function of index and seed on every backend: the WGSL kernel and
/// the CPU pass keep the same elements of the same input for the same seed.
#[test]
fn fused_dropout_draws_the_same_mask_on_every_backend() {
    use burn::backend::Dispatch;
    use burn::tensor::TensorData;
    use wgtune::kernels::FusedKernels;
    let n = 70_001;
    let masks: Vec<(String, Vec<f32>)> = devices()
        .into_iter()
        .map(|dev| {
            let x = Tensor::<1>::from_data(TensorData::new(vec![1.0f32; n], [n]), &dev.device);
            let seed = Tensor::<1>::from_data(TensorData::new(vec![0.123f32, 0.456], [2]), &dev.device);
            let dropped = Tensor::<1>::from_dispatch(Dispatch::fused_dropout(x.into_dispatch(), seed.into_dispatch(), 0.8));
            (dev.choice.to_string(), values(dropped).0)
        })
        .collect();
    let (first, reference) = &masks[0];
    let kept = reference.iter().filter(|v| **v != 0.0).count();
    assert!((kept as f64 / n as f64 - 0.8).abs() < 0.01, "{first}: kept {kept} of {n}");
    for (name, mask) in &masks[1..] {
        let differing = mask.iter().zip(reference).filter(|(a, b)| a != b).count();
        assert_eq!(differing, 0, "{name} and {first} differ in {differing} of {n} elements");
    }
}
