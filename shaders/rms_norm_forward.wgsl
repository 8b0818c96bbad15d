// RMSNorm of each row: out = x · r · weight, r = 1/√(mean(x²) + eps), and r kept for the
// backward pass. One workgroup per row: each invocation sums the squares of a strided share of the
// row, the workgroup adds the shares pairwise.
//
// x, out: [rows, dim]; weight: [dim]; inv_rms: [rows]. info: rows, dim, eps (f32 bits).
// Rows past 65535 workgroups continue along y.

@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> weight: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<storage, read_write> inv_rms: array<f32>;
@group(0) @binding(4) var<storage, read_write> info: array<u32>;


@compute @workgroup_size({{ block }}, 1, 1)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let params = uniform_info(lid, 3u);
    let row = wg.y * 65535u + wg.x;
    if row >= params[0] {
        return;
    }
    let dim = params[1];
    let base = row * dim;

    var s = 0.0;
    for (var c = lid; c < dim; c += BLOCK) {
        let v = x[base + c];
        s += v * v;
    }
    let total = workgroup_sum(s, lid);
    let r = inverseSqrt(total / f32(dim) + bitcast<f32>(params[2]));
    for (var c = lid; c < dim; c += BLOCK) {
        out[base + c] = x[base + c] * r * weight[c];
    }
    if lid == 0u {
        inv_rms[row] = r;
    }
}
