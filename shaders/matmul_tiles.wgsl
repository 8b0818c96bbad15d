// The tiling every matmul kernel shares (matmul.wgsl, matmul_nt.wgsl, over a dense or a packed
// B): one 16 × 16 block of C per invocation. Needs `a`, `c` and `info` (m, k, n
// first) bound by the file before it.

var<private> m: u32;
var<private> n: u32;
var<private> k4: u32;

// The first row and column of this invocation's 16 × 16 block of C (one block per invocation,
// row-major over the blocks); also reads the shape.
fn block_origin(wg: vec3<u32>, lid: u32) -> vec2<u32> {
    m = info[0];
    k4 = info[1] / 4u;
    n = info[2];
    let column_blocks = (n + 15u) / 16u;
    let id = (wg.x + wg.y * 65535u) * {{ block }}u + lid;
    return vec2<u32>((id / column_blocks) * 16u, (id % column_blocks) * 16u);
}

// Row `row` of A at `vec4` `kk`; rows past the end read the last one.
fn a_at(row: u32, kk: u32) -> vec4<f32> {
    return a[min(row, m - 1u) * k4 + kk];
}

// Row `row` of the block into C, from column `col` (a multiple of 16); nothing past the end.
fn store(row: u32, col: u32, s: mat4x4<f32>) {
    if row >= m {
        return;
    }
    let n4 = n / 4u;
    let base = row * n4 + col / 4u;
    for (var q = 0u; q < 4u; q++) {
        if col / 4u + q < n4 {
            c[base + q] = s[q];
        }
    }
}
