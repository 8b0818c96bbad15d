// C = A · B for row-major f32 matrices: A [m, k], B [k, n], C [m, n]; k and n multiples of 4.
//
// Written for lavapipe's llvmpipe, where an invocation's loads run one at a time but its
// arithmetic runs eight invocations wide: each invocation computes a 16 × 16 block of C, so every
// `vec4` it loads serves 16 rows (or columns). The block lives in 16 named `mat4x4`
// accumulators (`s<r>` is the block's row r: four `vec4`s of columns) because llvmpipe keeps
// arrays in memory: the same kernel over arrays ran at half the speed. On GPUs CubeCL's tiled
// matmul is the faster one (see `kernels::matmul`).
//
// Also the input gradient over a packed weight (B its `[out, in]` blocks, read as `[k, n]`).
//
// Preceded by matmul_common.wgsl (bindings, B in f32 or f16; or packed_common.wgsl, B packed) and
// matmul_tiles.wgsl (the tiling).

@compute @workgroup_size({{ block }}, 1, 1)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let origin = block_origin(wg, lid);
    let row0 = origin.x;
    let col = origin.y;
    if row0 >= m {
        return;
    }
    b_row4 = n / 4u;
    // Columns past the end read the last `vec4` of the row.
    let last = n / 4u - 1u;
    let c4 = col / 4u;
    let cols = vec4<u32>(min(c4, last), min(c4 + 1u, last), min(c4 + 2u, last), min(c4 + 3u, last));
    var s0 = mat4x4<f32>();
    var s1 = mat4x4<f32>();
    var s2 = mat4x4<f32>();
    var s3 = mat4x4<f32>();
    var s4 = mat4x4<f32>();
    var s5 = mat4x4<f32>();
    var s6 = mat4x4<f32>();
    var s7 = mat4x4<f32>();
    var s8 = mat4x4<f32>();
    var s9 = mat4x4<f32>();
    var s10 = mat4x4<f32>();
    var s11 = mat4x4<f32>();
    var s12 = mat4x4<f32>();
    var s13 = mat4x4<f32>();
    var s14 = mat4x4<f32>();
    var s15 = mat4x4<f32>();
    for (var kk = 0u; kk < k4; kk++) {
        let a0 = a_at(row0 + 0u, kk);
        let a1 = a_at(row0 + 1u, kk);
        let a2 = a_at(row0 + 2u, kk);
        let a3 = a_at(row0 + 3u, kk);
        let a4 = a_at(row0 + 4u, kk);
        let a5 = a_at(row0 + 5u, kk);
        let a6 = a_at(row0 + 6u, kk);
        let a7 = a_at(row0 + 7u, kk);
        let a8 = a_at(row0 + 8u, kk);
        let a9 = a_at(row0 + 9u, kk);
        let a10 = a_at(row0 + 10u, kk);
        let a11 = a_at(row0 + 11u, kk);
        let a12 = a_at(row0 + 12u, kk);
        let a13 = a_at(row0 + 13u, kk);
        let a14 = a_at(row0 + 14u, kk);
        let a15 = a_at(row0 + 15u, kk);
        for (var j = 0u; j < 4u; j++) {
            let row = kk * 4u + j;
            let bj = mat4x4<f32>(b_vec(row, cols.x), b_vec(row, cols.y), b_vec(row, cols.z), b_vec(row, cols.w));
            s0 += a0[j] * bj;
            s1 += a1[j] * bj;
            s2 += a2[j] * bj;
            s3 += a3[j] * bj;
            s4 += a4[j] * bj;
            s5 += a5[j] * bj;
            s6 += a6[j] * bj;
            s7 += a7[j] * bj;
            s8 += a8[j] * bj;
            s9 += a9[j] * bj;
            s10 += a10[j] * bj;
            s11 += a11[j] * bj;
            s12 += a12[j] * bj;
            s13 += a13[j] * bj;
            s14 += a14[j] * bj;
            s15 += a15[j] * bj;
        }
    }
    store(row0 + 0u, col, s0);
    store(row0 + 1u, col, s1);
    store(row0 + 2u, col, s2);
    store(row0 + 3u, col, s3);
    store(row0 + 4u, col, s4);
    store(row0 + 5u, col, s5);
    store(row0 + 6u, col, s6);
    store(row0 + 7u, col, s7);
    store(row0 + 8u, col, s8);
    store(row0 + 9u, col, s9);
    store(row0 + 10u, col, s10);
    store(row0 + 11u, col, s11);
    store(row0 + 12u, col, s12);
    store(row0 + 13u, col, s13);
    store(row0 + 14u, col, s14);
    store(row0 + 15u, col, s15);
}
