// Causal grouped-query attention, backward for the queries: one invocation per four query rows,
// recomputing the probabilities from the saved log-sum-exp.
//   p_ij = exp(scale · q_i·k_j − lse_i),  ds_ij = p_ij (dO_i·v_j − delta_i),  dQ_i = scale Σ_j ds_ij k_j
// where delta_i = dO_i·O_i. Keys are walked and read as in attention_forward.wgsl.

// Query rows per workgroup; each invocation takes four consecutive ones.
const BLOCK: u32 = {{ block }}u;

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
    let row0 = first_row + 4u * lid;
    let rows = min(vec4<u32>(row0, row0 + 1u, row0 + 2u, row0 + 3u), vec4<u32>(q_len - 1u));
    let pos = vec4<u32>(q_start) + rows;
    let keys = key_range(a, first_row, BLOCK);

    // Four rows side by side, as in attention_forward.wgsl: column r of q4[d] is row r's d-th vec4.
    var q4: array<mat4x4<f32>, D>;
    var g4: array<mat4x4<f32>, D>;
    var acc: array<mat4x4<f32>, D>;
    let base = (bh * q_len + rows) * D;
    for (var d = 0u; d < D; d++) {
        q4[d] = mat4x4<f32>(q[base.x + d], q[base.y + d], q[base.z + d], q[base.w + d]) * scale;
        g4[d] = mat4x4<f32>(grad_out[base.x + d], grad_out[base.y + d], grad_out[base.z + d], grad_out[base.w + d]);
    }
    let stat = bh * q_len + rows;
    let row_lse = vec4<f32>(lse[stat.x], lse[stat.y], lse[stat.z], lse[stat.w]);
    let row_delta = vec4<f32>(delta[stat.x], delta[stat.y], delta[stat.z], delta[stat.w]);

    for (var j = keys.x; j < keys.y; j++) {
        let key = kv_base + j * D;
        var s = vec4<f32>(0.0);
        var dp = vec4<f32>(0.0);
        for (var d = 0u; d < D; d++) {
            s += k[key + d] * q4[d];
            dp += v[key + d] * g4[d];
        }
        let jv = vec4<u32>(j);
        let visible = (jv <= pos) & ((pos - jv < vec4<u32>(window)) | vec4<bool>(window == 0u));
        let ds = select(vec4<f32>(0.0), exp(s - row_lse) * (dp - row_delta), visible);
        for (var d = 0u; d < D; d++) {
            let kd = k[key + d];
            let a = acc[d];
            acc[d] = mat4x4<f32>(a[0] + ds.x * kd, a[1] + ds.y * kd, a[2] + ds.z * kd, a[3] + ds.w * kd);
        }
    }

    for (var r = 0u; r < 4u; r++) {
        if row0 + r < q_len {
            for (var d = 0u; d < D; d++) {
                grad_q[base[r] + d] = acc[d][r] * scale;
            }
        }
    }
}
