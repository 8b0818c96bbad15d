//! Element-wise passes of the CPU backend's fused operations, written as one loop each and run on
//! every core. Burn's CPU element-wise operations run on one core, one operation per pass over
//! memory: a softmax is some six passes, SwiGLU's backward eight (BENCHMARKS.md, "A profile of the
//! CPU step"). The matmuls around these passes call `gemm` directly (`cpu_matmul.rs`).

use std::mem::MaybeUninit;

use burn::backend::Flex;
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::tensor::{Device, Tensor, TensorData};
use rayon::prelude::*;

/// Elements per task of the flat passes: large enough that scheduling costs nothing.
const FLAT_CHUNK: usize = 1 << 14;

/// The CPU backend's own tensor under a `Tensor`.
pub(super) fn flex<const D: usize>(t: Tensor<D>) -> FloatTensor<Flex> {
    t.try_into_primitive::<Flex>().expect("the CPU passes run on the CPU backend")
}

/// Rewrites each row (the last axis) of `t` with `f`, given the row's index, on every core;
/// returns the tensor, its memory reused where no one else holds it, and what `f` returned for
/// each row.
pub(super) fn map_rows<const D: usize>(t: Tensor<D>, f: impl Fn(usize, &mut [f32]) -> f32 + Sync) -> (Tensor<D>, Vec<f32>) {
    let row = t.dims()[D - 1];
    let mut t = writable(flex(t));
    let values = t.try_storage_mut::<f32>().expect("a tensor held once");
    let per_row = values.par_chunks_mut(row).enumerate().map(|(row, values)| f(row, values)).collect();
    (Tensor::from_primitive::<Flex>(t), per_row)
}

/// `t` with memory of its own to rewrite, row-major: its memory where no one else holds it and it
/// is all of it, else a copy.
pub(super) fn writable(t: FloatTensor<Flex>) -> FloatTensor<Flex> {
    let whole = t.layout().contiguous_offsets() == Some((0, t.bytes().len() / size_of::<f32>()));
    if whole && t.is_unique() {
        return t;
    }
    let shape = t.layout().shape().to_vec();
    let copy = HostValues::of(t).values().to_vec();
    FlexTensor::from_data(TensorData::new(copy, shape))
}

/// An f32 tensor on the CPU whose values are read where they lie (copied only when the tensor is
/// a strided view). Going through `TensorData` would copy even a contiguous tensor: Burn's CPU
/// tensors are allocated more aligned than a `Vec<f32>` may be.
pub(super) struct HostValues(FloatTensor<Flex>);

pub(super) fn host<const D: usize>(t: Tensor<D>) -> HostValues {
    HostValues::of(flex(t))
}

impl HostValues {
    fn of(t: FloatTensor<Flex>) -> Self {
        Self(if t.as_slice::<f32>().is_some() { t } else { t.to_contiguous() })
    }

    /// The values, row-major. Each call checks the layout: take them once, outside any loop.
    pub(super) fn values(&self) -> &[f32] {
        self.0.as_slice::<f32>().expect("an f32 tensor, made contiguous by `host`")
    }
}

/// `eˣ` within a relative 2·ε of `f32::exp` for `x ≤ 88` (+∞ above, 0 below −87, NaN
/// for NaN), in straight-line arithmetic the compiler vectorises: libm's `expf` is a call per
/// element, 7 % of a CPU step (BENCHMARKS.md). Cephes' `expf`: `x = n·ln 2 + r`, `|r| ≤ ln 2 / 2`,
/// `eʳ` by a degree-7 polynomial, `2ⁿ` put into the exponent bits.
pub(super) fn exp(x: f32) -> f32 {
    const LOG2_E: f32 = std::f32::consts::LOG2_E;
    // ln 2 in two parts, so that `n·LN2_HI` is exact.
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // 1.5·2²³: adding it rounds to an integer, which then sits in the low mantissa bits.
    const ROUND: f32 = 12_582_912.0;
    const LOW: f32 = -87.0;
    const HIGH: f32 = 88.0;
    // `clamp` keeps NaN a NaN, and so the result.
    let clamped = x.clamp(LOW, HIGH);
    let shifted = clamped * LOG2_E + ROUND;
    let n = shifted - ROUND;
    let r = clamped - n * LN2_HI - n * LN2_LO;
    let p = 1.987_569_2e-4;
    let p = p * r + 1.398_199_9e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 0.166_666_65;
    let p = p * r + 0.5;
    let y = p * r * r + r + 1.0;
    let exponent = shifted.to_bits().wrapping_sub(ROUND.to_bits()).wrapping_add(127) << 23;
    let e = y * f32::from_bits(exponent);
    if x < LOW {
        0.0
    } else if x > HIGH {
        f32::INFINITY
    } else {
        e
    }
}

/// `Σ exp(x − shift)` over `values`, in eight independent sums so that it vectorises.
fn sum_exp(values: &[f32], shift: f32) -> f32 {
    let mut lanes = [0.0f32; 8];
    let chunks = values.chunks_exact(8);
    let rest: f32 = chunks.remainder().iter().map(|&x| exp(x - shift)).sum();
    for chunk in chunks {
        for (lane, &x) in lanes.iter_mut().zip(chunk) {
            *lane += exp(x - shift);
        }
    }
    lanes.iter().sum::<f32>() + rest
}

/// Per row of `logits` `[rows, vocab]`: the log-sum-exp and `lse − logit[target]`.
pub(super) fn cross_entropy_rows(logits: Tensor<2>, targets: &[u32]) -> (Vec<f32>, Vec<f32>) {
    let vocab = logits.dims()[1];
    let logits = host(logits);
    logits
        .values()
        .par_chunks(vocab)
        .zip(targets.par_iter())
        .map(|(row, &target)| {
            let max = row.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
            let lse = max + sum_exp(row, max).ln();
            (lse, lse - row[target as usize])
        })
        .unzip()
}

/// `softmax(logits) − one_hot(targets)` from the rows' log-sum-exp, in the logits' memory.
pub(super) fn softmax_minus_one_hot(logits: Tensor<2>, lse: &[f32], targets: &[u32]) -> Tensor<2> {
    map_rows(logits, |row, values| {
        values.iter_mut().for_each(|x| *x = exp(*x - lse[row]));
        values[targets[row] as usize] -= 1.0;
        0.0
    })
    .0
}

/// `Σ a·b` over two equally long slices, in eight independent sums so that it vectorises.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 8];
    let (a_chunks, b_chunks) = (a.chunks_exact(8), b.chunks_exact(8));
    let rest: f32 = a_chunks.remainder().iter().zip(b_chunks.remainder()).map(|(x, y)| x * y).sum();
    for (a, b) in a_chunks.zip(b_chunks) {
        for ((lane, x), y) in lanes.iter_mut().zip(a).zip(b) {
            *lane += x * y;
        }
    }
    lanes.iter().sum::<f32>() + rest
}

/// RMSNorm of each row of `x` `[rows, dim]`: `x · r · weight`, `r = 1/√(mean(x²) + eps)`, into
/// new memory (training keeps `x`); returns the output and each row's `r` `[rows]`. Multiplying
/// by `r`, like transformers' `rsqrt`, rather than dividing by the root.
pub(super) fn rms_norm(x: Tensor<2>, weight: Tensor<1>, eps: f32) -> (Tensor<2>, Tensor<1>) {
    let ([rows, dim], device) = (x.dims(), x.device());
    let (x, weight) = (host(x), host(weight));
    let (x, weight) = (x.values(), weight.values());
    assert_eq!(weight.len(), dim, "one weight per column");
    let mut inv_rms = Vec::new();
    // SAFETY: every row, and every element of each (`zip` with `x`'s row and the weights, as long).
    let output = unsafe {
        written(rows * dim, |output| {
            inv_rms = output
                .par_chunks_mut(dim.max(1))
                .zip(x.par_chunks(dim.max(1)))
                .map(|(output, x)| {
                    let r = 1.0 / (dot(x, x) / dim as f32 + eps).sqrt();
                    for ((o, x), w) in output.iter_mut().zip(x).zip(weight.iter()) {
                        o.write(x * r * w);
                    }
                    r
                })
                .collect();
        })
    };
    (Tensor::from_data(TensorData::new(output, [rows, dim]), &device), flat(inv_rms, &device))
}

/// The gradient of [`rms_norm`] for `x`, given the gradient `g` of its output and each row's `r`:
/// `r·(w∘g) − x·r³·mean(x∘w∘g)`, in `grad`'s memory where no one else holds it.
pub(super) fn rms_norm_backward(x: Tensor<2>, weight: Tensor<1>, inv_rms: Tensor<1>, grad: Tensor<2>) -> Tensor<2> {
    let dim = x.dims()[1];
    let (x, weight, inv_rms) = (host(x), host(weight), host(inv_rms));
    let (x, weight, inv_rms) = (x.values(), weight.values(), inv_rms.values());
    map_rows(grad, |row, g| {
        let (x, r) = (&x[row * dim..(row + 1) * dim], inv_rms[row]);
        g.iter_mut().zip(weight.iter()).for_each(|(g, w)| *g *= w);
        // g now holds w∘g.
        let shift = r * r * r * dot(x, g) / dim as f32;
        g.iter_mut().zip(x).for_each(|(g, x)| *g = r * *g - x * shift);
        0.0
    })
    .0
}

/// `x` `[batch, heads, len, head_dim]` rotated by `cos`, `sin` `[1 or batch, len, head_dim]`
/// (`inverse`: the other way), one row of a head at a time.
pub(super) fn rotary(x: Tensor<4>, cos: Tensor<3>, sin: Tensor<3>, inverse: bool) -> Tensor<4> {
    let [_, heads, len, head_dim] = x.dims();
    let per_sequence = cos.dims()[0] > 1;
    let (cos, sin) = (host(cos), host(sin));
    let (cos, sin) = (cos.values(), sin.values());
    let (half, sign) = (head_dim / 2, if inverse { -1.0 } else { 1.0 });
    map_rows(x, |row, values| {
        let (sequence, position) = (row / (heads * len), row % len);
        let at = ((if per_sequence { sequence } else { 0 }) * len + position) * head_dim;
        let (cos, sin) = (&cos[at..at + half], &sin[at..at + half]);
        let (first, second) = values.split_at_mut(half);
        for j in 0..half {
            let (a, b, s) = (first[j], second[j], sign * sin[j]);
            first[j] = a * cos[j] - b * s;
            second[j] = b * cos[j] + a * s;
        }
        0.0
    })
    .0
}

/// `partials` with `Σ t²` written at `slot`: `t` in chunks on every core, their sums added in f64.
pub(super) fn add_squares(t: Tensor<1>, partials: Tensor<1>, slot: usize) -> Tensor<1> {
    let t = host(t);
    let sum: f64 = t.values().par_chunks(FLAT_CHUNK).map(|chunk| dot(chunk, chunk) as f64).sum();
    let mut partials = writable(flex(partials));
    partials.try_storage_mut::<f32>().expect("a tensor held once")[slot] = sum as f32;
    Tensor::from_primitive::<Flex>(partials)
}

/// One AdamW step of a flat parameter (`shaders/adamw.wgsl`'s arithmetic, in the same order),
/// on every core, into the memory of `param`, `m` and `v` where no one else holds it. The
/// coefficients as `FusedKernels::fused_adamw` takes them: lr, β1, β2, ε, decay, 1 − β1ᵗ, 1 − β2ᵗ,
/// gradient scale.
pub(super) fn adamw(
    param: Tensor<1>,
    grad: Tensor<1>,
    m: Tensor<1>,
    v: Tensor<1>,
    coefficients: [f32; 8],
) -> (Tensor<1>, Tensor<1>, Tensor<1>) {
    let [lr, beta1, beta2, eps, decay, bias1, bias2, grad_scale] = coefficients;
    let (step, root_bias2) = (lr / bias1, bias2.sqrt());
    let grad = host(grad);
    let (mut param, mut m, mut v) = (writable(flex(param)), writable(flex(m)), writable(flex(v)));
    let held_once = "a tensor held once";
    let (p_values, m_values, v_values) = (
        param.try_storage_mut::<f32>().expect(held_once),
        m.try_storage_mut::<f32>().expect(held_once),
        v.try_storage_mut::<f32>().expect(held_once),
    );
    let grad = grad.values();
    assert!(
        grad.len() == p_values.len() && m_values.len() == p_values.len() && v_values.len() == p_values.len(),
        "a gradient and moments like the parameter"
    );
    p_values
        .par_chunks_mut(FLAT_CHUNK)
        .zip(m_values.par_chunks_mut(FLAT_CHUNK).zip(v_values.par_chunks_mut(FLAT_CHUNK)))
        .zip(grad.par_chunks(FLAT_CHUNK))
        .for_each(|((p, (m, v)), g)| {
            for i in 0..p.len() {
                let g = g[i] * grad_scale;
                m[i] = beta1 * m[i] + (1.0 - beta1) * g;
                v[i] = beta2 * v[i] + (1.0 - beta2) * g * g;
                p[i] = p[i] * decay - step * m[i] / (v[i].sqrt() / root_bias2 + eps);
            }
        });
    let tensor = |t| Tensor::<1>::from_primitive::<Flex>(t);
    (tensor(param), tensor(m), tensor(v))
}

/// `f()` compiled for the best vector extensions this processor has (AVX2, AVX-512), picked at
/// run time: the binary targets baseline x86-64, whose SSE2 has no 32-bit integer multiply, so the
/// dropout hash ran a lane at a time (10 % of a step with LoRA dropout; BENCHMARKS.md). The float
/// passes gained nothing measurable from it. Call it inside each task of a parallel loop.
#[inline(always)]
fn vectorized<R>(f: impl FnOnce() -> R) -> R {
    pulp::Arch::new().dispatch(f)
}

/// Chris Wellons' lowbias32, a 32-bit integer hash with low bias (`shaders/dropout.wgsl`'s).
#[inline(always)]
fn lowbias32(mut h: u32) -> u32 {
    h ^= h >> 16;
    h = h.wrapping_mul(0x7feb_352d);
    h ^= h >> 15;
    h = h.wrapping_mul(0x846c_a68b);
    h ^= h >> 16;
    h
}

/// The flat `x` dropped out (see `dropout.rs`), into new memory: element `i` kept, scaled by
/// `1 / keep`, where the hash of `i` and the seed's bits falls below `keep`, bit for bit as
/// `shaders/dropout.wgsl` decides it.
pub(super) fn dropout(x: Tensor<1>, seed: Tensor<1>, keep: f32) -> Tensor<1> {
    let device = x.device();
    let (x, seed) = (host(x), host(seed));
    let (x, seed) = (x.values(), seed.values());
    let (seed0, seed1) = (seed[0].to_bits(), seed[1].to_bits());
    let (threshold, scale) = super::dropout::keep_threshold(keep);
    // SAFETY: every chunk, and every element of each (`zip` with `x`'s chunk, as long).
    let output = unsafe {
        written(x.len(), |output| {
            output.par_chunks_mut(FLAT_CHUNK).zip(x.par_chunks(FLAT_CHUNK)).enumerate().for_each(|(chunk, (output, x))| {
                let first = (chunk * FLAT_CHUNK) as u32;
                vectorized(|| {
                    for (j, (o, &x)) in output.iter_mut().zip(x).enumerate() {
                        let h = lowbias32(lowbias32((first + j as u32) ^ seed0) ^ seed1);
                        o.write(if (h >> 8) < threshold { x * scale } else { 0.0 });
                    }
                })
            });
        })
    };
    flat(output, &device)
}

/// `silu(gate) · up` of two flat tensors, into new memory (training keeps `gate` for the
/// backward pass).
pub(super) fn swiglu(gate: Tensor<1>, up: Tensor<1>) -> Tensor<1> {
    let device = gate.device();
    let (gate, up) = (host(gate), host(up));
    let (gate, up) = (gate.values(), up.values());
    assert_eq!(gate.len(), up.len(), "`gate` and `up` alike");
    // SAFETY: every chunk, and every element of each (`zip` with `gate`'s and `up`'s, as long).
    let output = unsafe {
        written(gate.len(), |output| {
            output.par_chunks_mut(FLAT_CHUNK).zip(gate.par_chunks(FLAT_CHUNK).zip(up.par_chunks(FLAT_CHUNK))).for_each(
                |(output, (gate, up))| {
                    for ((o, g), u) in output.iter_mut().zip(gate).zip(up) {
                        o.write(g / (1.0 + exp(-g)) * u);
                    }
                },
            );
        })
    };
    flat(output, &device)
}

/// A `len`-long vector that `write` fills, given its memory uninitialised (zeroing it first would
/// be one more pass over fresh memory).
///
/// # Safety
/// `write` writes every element.
unsafe fn written(len: usize, write: impl FnOnce(&mut [MaybeUninit<f32>])) -> Vec<f32> {
    let mut values = Vec::with_capacity(len);
    write(&mut values.spare_capacity_mut()[..len]);
    // SAFETY: the caller's `write` wrote every element.
    unsafe { values.set_len(len) };
    values
}

fn flat(values: Vec<f32>, device: &Device) -> Tensor<1> {
    let n = values.len();
    Tensor::from_data(TensorData::new(values, [n]), device)
}

/// The gradients of [`swiglu`] for `gate` and `up`, given the gradient of its output:
/// `d·u·s·(1 + g·(1 − s))` and `d·g·s`, with `s = sigmoid(g)`; the second in `up`'s memory.
pub(super) fn swiglu_backward(gate: Tensor<1>, up: Tensor<1>, grad: Tensor<1>) -> (Tensor<1>, Tensor<1>) {
    let n = gate.dims()[0];
    let device = gate.device();
    let (gate, grad, mut up) = (host(gate), host(grad), writable(flex(up)));
    let (gate, grad) = (gate.values(), grad.values());
    let up_values = up.try_storage_mut::<f32>().expect("a tensor held once");
    assert!(gate.len() == n && grad.len() == n && up_values.len() == n, "`gate`, `up` and the gradient alike");
    // SAFETY: every chunk, and every index of each (`0..gate.len()`, the chunk's length).
    let grad_gate = unsafe {
        written(n, |grad_gate| {
            grad_gate
                .par_chunks_mut(FLAT_CHUNK)
                .zip(up_values.par_chunks_mut(FLAT_CHUNK))
                .zip(gate.par_chunks(FLAT_CHUNK).zip(grad.par_chunks(FLAT_CHUNK)))
                .for_each(|((grad_gate, up), (gate, grad))| {
                    for i in 0..gate.len() {
                        let (g, d) = (gate[i], grad[i]);
                        let s = 1.0 / (1.0 + exp(-g));
                        grad_gate[i].write(d * up[i] * s * (1.0 + g * (1.0 - s)));
                        // The gradient for `up` takes `up`'s place once `up` is read.
                        up[i] = d * g * s;
                    }
                });
        })
    };
    (flat(grad_gate, &device), Tensor::from_primitive::<Flex>(up))
}

#[cfg(test)]
mod tests {
    use super::exp;

    #[test]
    fn exp_is_within_two_epsilon_of_libm_and_keeps_the_edges() {
        let mut worst = 0.0f32;
        for i in 0..=2_000_000 {
            let x = -87.0 + 175.0 * i as f32 / 2_000_000.0;
            let (ours, libm) = (exp(x), x.exp());
            worst = worst.max(((ours - libm) / libm).abs());
        }
        assert!(worst <= 2.0 * f32::EPSILON, "worst relative error {worst:e}");
        assert_eq!(exp(0.0), 1.0);
        assert_eq!(exp(-1e9), 0.0);
        assert_eq!(exp(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp(1e9), f32::INFINITY);
        assert!(exp(f32::NAN).is_nan());
    }
}
