// The bindings of the two dense matmuls: this file, then matmul_tiles.wgsl, then the `main` of
// matmul.wgsl or matmul_nt.wgsl (which read B through `b_vec`, as the packed matmuls do through
// packed_common.wgsl's). info: m, k, n.
//
// B may be stored in f16 (`b_type`, with `enable f16` from the template): each `vec4` is widened
// to f32 as it is read, so f16 weights cost half the memory and multiply at f32's speed and
// precision.

{{ enable_f16 }}
@group(0) @binding(0) var<storage, read_write> a: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> b: array<vec4<{{ b_type }}>>;
@group(0) @binding(2) var<storage, read_write> c: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> info: array<u32>;

// `vec4`s in one stored row of B; each kernel's `main` sets it (k / 4 for B `[n, k]`, n / 4 for
// B `[k, n]`).
var<private> b_row4: u32;

// `vec4` number `c4` of B's stored row `row`, widened to f32 when B is stored in f16.
fn b_vec(row: u32, c4: u32) -> vec4<f32> {
    return vec4<f32>(b[row * b_row4 + c4]);
}
