// Causal grouped-query attention, backward for keys and values: one invocation per four key rows
// of a key/value head, summing over every query head that shares it and every query that sees it.
//   dV_j = Σ_i p_ij dO_i,  dK_j = scale Σ_i ds_ij q_i   (p, ds as in attention_backward_query.wgsl)
// grad_kv holds dK then dV, each [batch, kv_heads, kv_len, D]. Queries are walked and read the way
// attention_forward.wgsl walks keys.

// Key rows per workgroup; each invocation takes four consecutive ones.
const BLOCK: u32 = {{ block }}u;

@compute @workgroup_size({{ invocations }}, 1, 1)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let a = read_info();
    let heads = a.heads;
    let kv_heads = a.kv_heads;
    let q_len = a.q_len;
    let kv_len = a.kv_len;
    let q_start = a.q_start;
    let window = a.window;
    let scale = a.scale;
    let group = heads / kv_heads;

    let bkv = wg.y;
    let b = bkv / kv_heads;
    let kvh = bkv % kv_heads;
    let first_key = wg.x * BLOCK;
    // This invocation's four keys; those past the last key compute a copy of it and store nothing.
    let key0 = first_key + 4u * lid;
    let keys = min(vec4<u32>(key0, key0 + 1u, key0 + 2u, key0 + 3u), vec4<u32>(kv_len - 1u));
    let kv_rows = (bkv * kv_len + keys) * D;

    // Four keys side by side, as the queries in attention_forward.wgsl.
    var k4: array<mat4x4<f32>, D>;
    var v4: array<mat4x4<f32>, D>;
    var dk: array<mat4x4<f32>, D>;
    var dv: array<mat4x4<f32>, D>;
    for (var d = 0u; d < D; d++) {
        k4[d] = mat4x4<f32>(k[kv_rows.x + d], k[kv_rows.y + d], k[kv_rows.z + d], k[kv_rows.w + d]) * scale;
        v4[d] = mat4x4<f32>(v[kv_rows.x + d], v[kv_rows.y + d], v[kv_rows.z + d], v[kv_rows.w + d]);
    }
    // The queries that see some key of this workgroup (the same for every invocation).
    let queries = query_range(a, first_key, BLOCK);

    for (var g = 0u; g < group; g++) {
        let bh = b * heads + kvh * group + g;
        for (var i = queries.x; i < queries.y; i++) {
            let query = (bh * q_len + i) * D;
            let pos = vec4<u32>(q_start + i);
            var s = vec4<f32>(0.0);
            var dp = vec4<f32>(0.0);
            for (var d = 0u; d < D; d++) {
                s += q[query + d] * k4[d];
                dp += grad_out[query + d] * v4[d];
            }
            let visible = (keys <= pos) & ((pos - keys < vec4<u32>(window)) | vec4<bool>(window == 0u));
            let p = select(vec4<f32>(0.0), exp(s - lse[bh * q_len + i]), visible);
            let ds = p * (dp - delta[bh * q_len + i]);
            for (var d = 0u; d < D; d++) {
                let gd = grad_out[query + d];
                let qd = q[query + d];
                let a = dv[d];
                dv[d] = mat4x4<f32>(a[0] + p.x * gd, a[1] + p.y * gd, a[2] + p.z * gd, a[3] + p.w * gd);
                let c = dk[d];
                dk[d] = mat4x4<f32>(c[0] + ds.x * qd, c[1] + ds.y * qd, c[2] + ds.z * qd, c[3] + ds.w * qd);
            }
        }
    }

    let grad_v = grad_v_start(a);
    for (var r = 0u; r < 4u; r++) {
        if key0 + r < kv_len {
            for (var d = 0u; d < D; d++) {
                grad_kv[kv_rows[r] + d] = dk[d][r] * scale;
                grad_kv[grad_v + kv_rows[r] + d] = dv[d][r];
            }
        }
    }
}
