// The buffers of both shapes of the attention's backward pass for keys and values (launch.rs
// binds them in this order). grad_kv: [2, batch, kv_heads, kv_len, D], the key gradients then the
// value gradients (one buffer, so that the pass stays within WebGPU's eight storage buffers).

@group(0) @binding(0) var<storage, read_write> q: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> k: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> v: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> grad_out: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> lse: array<f32>;
@group(0) @binding(5) var<storage, read_write> delta: array<f32>;
@group(0) @binding(6) var<storage, read_write> grad_kv: array<vec4<f32>>;
@group(0) @binding(7) var<storage, read_write> info: array<u32>;

// Where the value gradients start in `grad_kv`: after the key gradients, as large as `k`.
fn grad_v_start(a: Attention) -> u32 {
    return info[0] * a.kv_heads * a.kv_len * D;
}
