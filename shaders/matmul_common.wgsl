// The bindings of the two dense matmul kernels (matmul.wgsl, matmul_nt.wgsl); each is this file,
// then matmul_tiles.wgsl, then its own `main`. info: m, k, n.
//
// B may be stored in f16 (`b_type`, with `enable f16` from the template): each `vec4` is widened
// to f32 as it is read, so f16 weights cost half the memory and multiply at f32's speed and
// precision.

{{ enable_f16 }}
@group(0) @binding(0) var<storage, read_write> a: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> b: array<vec4<{{ b_type }}>>;
@group(0) @binding(2) var<storage, read_write> c: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> info: array<u32>;

// B's `vec4` at `i`, widened to f32 when B is stored in f16.
fn b_at(i: u32) -> vec4<f32> {
    return vec4<f32>(b[i]);
}
