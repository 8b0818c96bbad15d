// The gradient of RMSNorm for its input, per row: dx = r·(w∘g) − x·r³·mean(x∘w∘g), from the r the
// forward pass kept. One workgroup per row, as the forward pass.
//
// x, grad, dx: [rows, dim]; weight: [dim]; inv_rms: [rows]. info: rows, dim.

@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> weight: array<f32>;
@group(0) @binding(2) var<storage, read_write> inv_rms: array<f32>;
@group(0) @binding(3) var<storage, read_write> grad: array<f32>;
@group(0) @binding(4) var<storage, read_write> dx: array<f32>;
@group(0) @binding(5) var<storage, read_write> info: array<u32>;


@compute @workgroup_size({{ block }}, 1, 1)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let params = uniform_info(lid, 2u);
    let row = wg.y * 65535u + wg.x;
    if row >= params[0] {
        return;
    }
    let dim = params[1];
    let base = row * dim;

    var s = 0.0;
    for (var c = lid; c < dim; c += BLOCK) {
        s += x[base + c] * weight[c] * grad[base + c];
    }
    let total = workgroup_sum(s, lid);
    let r = inv_rms[row];
    let shift = r * r * r * total / f32(dim);
    for (var c = lid; c < dim; c += BLOCK) {
        dx[base + c] = r * weight[c] * grad[base + c] - x[base + c] * shift;
    }
}
