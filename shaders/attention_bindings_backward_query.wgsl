// The buffers of both shapes of the attention's backward pass for the queries (launch.rs binds
// them in this order). delta: [batch, heads, q_len], each row's dO·O; grad_q: like q.

@group(0) @binding(0) var<storage, read_write> q: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> k: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> v: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> grad_out: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> lse: array<f32>;
@group(0) @binding(5) var<storage, read_write> delta: array<f32>;
@group(0) @binding(6) var<storage, read_write> grad_q: array<vec4<f32>>;
@group(0) @binding(7) var<storage, read_write> info: array<u32>;
