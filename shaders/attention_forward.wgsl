// Causal grouped-query attention, forward, one invocation per four query rows (FlashAttention-style
// online softmax): O = softmax(scale · Q Kᵀ + mask) V, and the row log-sum-exp for the backward
// pass. Nothing of size [queries × keys] is ever stored.
//
// Every invocation of a workgroup walks the same keys in the same order and reads them straight
// from the storage buffers; a row masks the keys it may not see (see "uniform loads" in
// src/kernels/launch.rs).

// Query rows per workgroup; each invocation takes four consecutive ones.
const BLOCK: u32 = {{ block }}u;
const NEG: f32 = -3.0e38;

@compute @workgroup_size({{ invocations }}, 1, 1)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let a = read_info();
    let heads = a.heads;
    let q_len = a.q_len;
    let q_start = a.q_start;
    let window = a.window;
    let scale = a.scale;

    let bh = wg.y;
    let b = bh / heads;
    let h = bh % heads;
    let kv_base = (b * a.kv_heads + h / (heads / a.kv_heads)) * a.kv_len * D;

    let first_row = wg.x * BLOCK;
    // This invocation's four rows; those past the last row compute a copy of it and store nothing.
    let row0 = first_row + 4u * lid;
    let rows = min(vec4<u32>(row0, row0 + 1u, row0 + 2u, row0 + 3u), vec4<u32>(q_len - 1u));
    let pos = vec4<u32>(q_start) + rows;
    // The keys some row of this workgroup sees (the same for every invocation).
    let keys = key_range(a, first_row, BLOCK);

    // Column r of q4[d] (acc[d]) is row r's d-th vec4 of the query (of the output), so that one
    // key vec4 times q4[d] is the four rows' partial scores: each key is loaded once for four rows.
    var q4: array<mat4x4<f32>, D>;
    var acc: array<mat4x4<f32>, D>;
    let base = (bh * q_len + rows) * D;
    for (var d = 0u; d < D; d++) {
        q4[d] = mat4x4<f32>(q[base.x + d], q[base.y + d], q[base.z + d], q[base.w + d]) * scale;
    }
    var m = vec4<f32>(NEG);
    var l = vec4<f32>(0.0);

    for (var j = keys.x; j < keys.y; j++) {
        let key = kv_base + j * D;
        var s = vec4<f32>(0.0);
        for (var d = 0u; d < D; d++) {
            s += k[key + d] * q4[d];
        }
        let jv = vec4<u32>(j);
        let visible = (jv <= pos) & ((pos - jv < vec4<u32>(window)) | vec4<bool>(window == 0u));
        let m_new = max(m, select(vec4<f32>(NEG), s, visible));
        let c = exp(m - m_new);
        let p = select(vec4<f32>(0.0), exp(s - m_new), visible);
        l = l * c + p;
        for (var d = 0u; d < D; d++) {
            let value = v[key + d];
            let a = acc[d];
            acc[d] = mat4x4<f32>(a[0] * c.x + p.x * value, a[1] * c.y + p.y * value, a[2] * c.z + p.z * value, a[3] * c.w + p.w * value);
        }
        m = m_new;
    }

    let inv = 1.0 / l;
    let row_lse = m + log(l);
    for (var r = 0u; r < 4u; r++) {
        if row0 + r < q_len {
            for (var d = 0u; d < D; d++) {
                o[base[r] + d] = acc[d][r] * inv[r];
            }
            lse[bh * q_len + row0 + r] = row_lse[r];
        }
    }
}
