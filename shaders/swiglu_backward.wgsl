// Gradients of out = silu(gate) · up, recomputing σ(gate) instead of keeping it:
//   ∂/∂up   = grad · silu(g)
//   ∂/∂gate = grad · up · σ(g) · (1 + g · (1 − σ(g)))
// gate, up, grad, grad_gate, grad_up: [n]; info: n.

@group(0) @binding(0) var<storage, read_write> gate: array<f32>;
@group(0) @binding(1) var<storage, read_write> up: array<f32>;
@group(0) @binding(2) var<storage, read_write> grad: array<f32>;
@group(0) @binding(3) var<storage, read_write> grad_gate: array<f32>;
@group(0) @binding(4) var<storage, read_write> grad_up: array<f32>;
@group(0) @binding(5) var<storage, read_write> info: array<u32>;

@compute @workgroup_size({{ block }}, 1, 1)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = (wg.y * 65535u + wg.x) * {{ block }}u + lid;
    if i >= info[0] {
        return;
    }
    let g = gate[i];
    let s = 1.0 / (1.0 + exp(-g));
    let dy = grad[i];
    grad_up[i] = dy * g * s;
    grad_gate[i] = dy * up[i] * s * (1.0 + g * (1.0 - s));
}
