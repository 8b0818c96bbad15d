// The SwiGLU activation of a Llama MLP: out = silu(gate) · up, silu(g) = g · σ(g).
// gate, up, out: [n]; info: n. Nothing but the two inputs is kept for the backward pass.

@group(0) @binding(0) var<storage, read_write> gate: array<f32>;
@group(0) @binding(1) var<storage, read_write> up: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<storage, read_write> info: array<u32>;

@compute @workgroup_size({{ block }}, 1, 1)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = (wg.y * 65535u + wg.x) * {{ block }}u + lid;
    if i >= info[0] {
        return;
    }
    let g = gate[i];
    out[i] = g / (1.0 + exp(-g)) * up[i];
}
