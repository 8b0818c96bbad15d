// The buffers of both shapes of the attention forward (launch.rs binds them in this order).
// q: [batch, heads, q_len, D]; k, v: [batch, kv_heads, kv_len, D]; o: like q; lse: [batch, heads, q_len].

@group(0) @binding(0) var<storage, read_write> q: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> k: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> v: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> o: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> lse: array<f32>;
@group(0) @binding(5) var<storage, read_write> info: array<u32>;
