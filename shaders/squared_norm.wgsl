// Σ x² over one tensor, as partial sums: each workgroup strides over the tensor, adds its share
// pairwise, and writes one partial sum; one reduction over all partials (every tensor's) follows.
//
// values: [n]; partials: one slot per workgroup of every tensor of the norm.
// info: n, this tensor's first slot, its number of workgroups (slots).

@group(0) @binding(0) var<storage, read_write> values: array<f32>;
@group(0) @binding(1) var<storage, read_write> partials: array<f32>;
@group(0) @binding(2) var<storage, read_write> info: array<u32>;


@compute @workgroup_size({{ block }}, 1, 1)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let params = uniform_info(lid, 3u);
    let n = params[0];
    let grid = params[2] * BLOCK;

    var s = 0.0;
    for (var i = wg.x * BLOCK + lid; i < n; i += grid) {
        let v = values[i];
        s += v * v;
    }
    let total = workgroup_sum(s, lid);
    if lid == 0u {
        partials[params[1] + wg.x] = total;
    }
}
