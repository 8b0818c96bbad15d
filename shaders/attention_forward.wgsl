// Causal grouped-query attention, forward, one invocation per query row (FlashAttention-style
// online softmax): O = softmax(scale · Q Kᵀ + mask) V, and the row log-sum-exp for the backward
// pass. Nothing of size [queries × keys] is ever stored.
//
// Every invocation of a workgroup walks the same keys in the same order and reads them straight
// from the storage buffers; a row masks the keys it may not see (see "uniform loads" in
// src/kernels/launch.rs).
//
// q: [batch, heads, q_len, D]; k, v: [batch, kv_heads, kv_len, D]; o: like q; lse: [batch, heads, q_len].
// info: batch, heads, kv_heads, q_len, kv_len, q_start (absolute position of query 0), window
// (0: unlimited), scale (f32 bits).

@group(0) @binding(0) var<storage, read_write> q: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> k: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> v: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> o: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> lse: array<f32>;
@group(0) @binding(5) var<storage, read_write> info: array<u32>;

// Head dimension in vec4 units.
const D: u32 = {{ head_dim_vec4 }}u;
const BLOCK: u32 = {{ block }}u;
const NEG: f32 = -3.0e38;

@compute @workgroup_size({{ block }}, 1, 1)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let heads = info[1];
    let kv_heads = info[2];
    let q_len = info[3];
    let kv_len = info[4];
    let q_start = info[5];
    let window = info[6];
    let scale = bitcast<f32>(info[7]);

    let bh = wg.y;
    let b = bh / heads;
    let h = bh % heads;
    let kv_base = (b * kv_heads + h / (heads / kv_heads)) * kv_len * D;

    let first_row = wg.x * BLOCK;
    // Invocations past the last row compute a copy of it and store nothing.
    let row = min(first_row + lid, q_len - 1u);
    let pos = q_start + row;
    // The keys some row of this workgroup sees (the same for every invocation).
    let first_pos = q_start + first_row;
    let key_begin = select(0u, first_pos + 1u - min(window, first_pos + 1u), window != 0u);
    let key_end = min(kv_len, q_start + min(first_row + BLOCK, q_len));

    var qr: array<vec4<f32>, D>;
    var acc: array<vec4<f32>, D>;
    let base = (bh * q_len + row) * D;
    for (var d = 0u; d < D; d++) {
        qr[d] = q[base + d] * scale;
        acc[d] = vec4<f32>(0.0);
    }
    var m = NEG;
    var l = 0.0;

    for (var j = key_begin; j < key_end; j++) {
        let key = kv_base + j * D;
        var s = 0.0;
        for (var d = 0u; d < D; d++) {
            s += dot(qr[d], k[key + d]);
        }
        let visible = j <= pos && (window == 0u || pos - j < window);
        let m_new = max(m, select(NEG, s, visible));
        let correction = exp(m - m_new);
        let p = select(0.0, exp(s - m_new), visible);
        l = l * correction + p;
        for (var d = 0u; d < D; d++) {
            acc[d] = acc[d] * correction + p * v[key + d];
        }
        m = m_new;
    }

    if first_row + lid < q_len {
        let inv = 1.0 / l;
        for (var d = 0u; d < D; d++) {
            o[base + d] = acc[d] * inv;
        }
        lse[bh * q_len + row] = m + log(l);
    }
}
