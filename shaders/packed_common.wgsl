// The bindings and the block decoding of the two matmuls over a packed weight W: this file, then
// matmul_tiles.wgsl, then the `main` of matmul_nt.wgsl (x · Wᵀ, the forward product) or matmul.wgsl
// (dy · W, the input gradient), which read W through `b_vec`. W is `[rows, cols]` (the
// checkpoint's `[out, in]`) in blocks of 32 along a row, laid out as `src/model/packed.rs`
// describes: `values` holds four int8 or eight 4-bit numbers a word; `params` holds int8's f16
// scale per block, or int4's rows: the blocks' (8-bit scale, signed 8-bit minimum) pairs, two a
// word, then each super-block of eight blocks' f16 `d` and `dmin`.
//
// info: m, k, n of the matmul (as matmul_tiles.wgsl reads them), then W's blocks per row, its
// params words per row, and where in a row's params its super-blocks' words start (int4).

@group(0) @binding(0) var<storage, read_write> a: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> values: array<u32>;
@group(0) @binding(2) var<storage, read_write> params: array<u32>;
@group(0) @binding(3) var<storage, read_write> c: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> info: array<u32>;

// 8 or 4: a constant, so each kernel compiles one branch of `b_vec`.
const BITS: u32 = {{ bits }}u;

// Set by the kernels' `main` for dense B; a packed row's length is its blocks (info[3]).
var<private> b_row4: u32;

// W's numbers `4·kk` to `4·kk + 3` of row `row`, dequantized.
fn b_vec(row: u32, kk: u32) -> vec4<f32> {
    let b = kk / 8u;
    let block = row * info[3] + b;
    if BITS == 8u {
        let scale = unpack2x16float(params[block]).x;
        let word = values[block * 8u + kk % 8u];
        let q = bitcast<vec4<i32>>(vec4<u32>(word << 24u, word << 16u, word << 8u, word)) >> vec4<u32>(24u);
        return vec4<f32>(q) * scale;
    }
    let row_params = row * info[4];
    let pair = params[row_params + b / 2u] >> ((b % 2u) * 16u);
    let sc = f32(pair & 255u);
    let mi = f32(bitcast<i32>(pair << 16u) >> 24u);
    let d = unpack2x16float(params[row_params + info[5] + b / 8u]);
    let word = values[block * 4u + (kk % 8u) / 2u] >> ((kk % 2u) * 16u);
    let q = (vec4<u32>(word) >> vec4<u32>(0u, 4u, 8u, 12u)) & vec4<u32>(15u);
    return vec4<f32>(q) * (d.x * sc) + d.y * mi;
}
