// C = A · Bᵀ for row-major f32 matrices: A [m, k], B [n, k], C [m, n]; k and n multiples of 4.
// The layout of matmul.wgsl (which see), with B's rows as C's columns: a transposed operand (a
// weight in the backward pass, the tied embedding as output projection) is read where it lies.
// Also the forward product over a packed weight, B its `[out, in]` blocks: each `vec4` it
// dequantizes serves the block's 16 rows.
//
// Preceded by matmul_common.wgsl (or packed_common.wgsl) and matmul_tiles.wgsl.

@compute @workgroup_size({{ block }}, 1, 1)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let origin = block_origin(wg, lid);
    let row0 = origin.x;
    let col = origin.y;
    if row0 >= m {
        return;
    }
    b_row4 = k4;
    // B's rows for the block's 16 columns; columns past the end read the last row.
    let rb0 = min(col + 0u, n - 1u);
    let rb1 = min(col + 1u, n - 1u);
    let rb2 = min(col + 2u, n - 1u);
    let rb3 = min(col + 3u, n - 1u);
    let rb4 = min(col + 4u, n - 1u);
    let rb5 = min(col + 5u, n - 1u);
    let rb6 = min(col + 6u, n - 1u);
    let rb7 = min(col + 7u, n - 1u);
    let rb8 = min(col + 8u, n - 1u);
    let rb9 = min(col + 9u, n - 1u);
    let rb10 = min(col + 10u, n - 1u);
    let rb11 = min(col + 11u, n - 1u);
    let rb12 = min(col + 12u, n - 1u);
    let rb13 = min(col + 13u, n - 1u);
    let rb14 = min(col + 14u, n - 1u);
    let rb15 = min(col + 15u, n - 1u);
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
        // Four columns of the block per matrix: a * b<q> is a row's dot products with them.
        let b0 = mat4x4<f32>(b_vec(rb0, kk), b_vec(rb1, kk), b_vec(rb2, kk), b_vec(rb3, kk));
        let b1 = mat4x4<f32>(b_vec(rb4, kk), b_vec(rb5, kk), b_vec(rb6, kk), b_vec(rb7, kk));
        let b2 = mat4x4<f32>(b_vec(rb8, kk), b_vec(rb9, kk), b_vec(rb10, kk), b_vec(rb11, kk));
        let b3 = mat4x4<f32>(b_vec(rb12, kk), b_vec(rb13, kk), b_vec(rb14, kk), b_vec(rb15, kk));
        s0 += mat4x4<f32>(a0 * b0, a0 * b1, a0 * b2, a0 * b3);
        s1 += mat4x4<f32>(a1 * b0, a1 * b1, a1 * b2, a1 * b3);
        s2 += mat4x4<f32>(a2 * b0, a2 * b1, a2 * b2, a2 * b3);
        s3 += mat4x4<f32>(a3 * b0, a3 * b1, a3 * b2, a3 * b3);
        s4 += mat4x4<f32>(a4 * b0, a4 * b1, a4 * b2, a4 * b3);
        s5 += mat4x4<f32>(a5 * b0, a5 * b1, a5 * b2, a5 * b3);
        s6 += mat4x4<f32>(a6 * b0, a6 * b1, a6 * b2, a6 * b3);
        s7 += mat4x4<f32>(a7 * b0, a7 * b1, a7 * b2, a7 * b3);
        s8 += mat4x4<f32>(a8 * b0, a8 * b1, a8 * b2, a8 * b3);
        s9 += mat4x4<f32>(a9 * b0, a9 * b1, a9 * b2, a9 * b3);
        s10 += mat4x4<f32>(a10 * b0, a10 * b1, a10 * b2, a10 * b3);
        s11 += mat4x4<f32>(a11 * b0, a11 * b1, a11 * b2, a11 * b3);
        s12 += mat4x4<f32>(a12 * b0, a12 * b1, a12 * b2, a12 * b3);
        s13 += mat4x4<f32>(a13 * b0, a13 * b1, a13 * b2, a13 * b3);
        s14 += mat4x4<f32>(a14 * b0, a14 * b1, a14 * b2, a14 * b3);
        s15 += mat4x4<f32>(a15 * b0, a15 * b1, a15 * b2, a15 * b3);
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
