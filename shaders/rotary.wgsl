// The rotary position embedding: out = x·cos + rotate_half(x)·sin, rotate_half(x) = [−x₂, x₁] of
// the two halves of each head; `inverse` rotates the other way (sin negated), which is the
// backward pass since the two halves of a table row are alike.
//
// x, out: [batch, heads, len, head_dim]; cos, sin: [1 or batch, len, head_dim].
// info: the element count, then head_dim, len, heads, per_sequence (the tables have a row per
// sequence), inverse. One invocation per element.

@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> cos_table: array<f32>;
@group(0) @binding(2) var<storage, read_write> sin_table: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<storage, read_write> info: array<u32>;

@compute @workgroup_size({{ block }}, 1, 1)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = (wg.y * 65535u + wg.x) * {{ block }}u + lid;
    if i >= info[0] {
        return;
    }
    let head_dim = info[1];
    let len = info[2];
    let half_dim = head_dim / 2u;
    let j = i % head_dim;
    let row = i / head_dim;
    let position = row % len;
    let sequence = select(0u, row / (len * info[3]), info[4] != 0u);
    let at = (sequence * len + position) * head_dim + j;
    let s = select(1.0, -1.0, info[5] != 0u) * sin_table[at];
    if j < half_dim {
        out[i] = x[i] * cos_table[at] - x[i + half_dim] * s;
    } else {
        out[i] = x[i] * cos_table[at] + x[i - half_dim] * s;
    }
}
