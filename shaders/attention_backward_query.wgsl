// Causal grouped-query attention, backward for the queries: one invocation per query row,
// recomputing the probabilities from the saved log-sum-exp.
//   p_ij = exp(scale · q_i·k_j − lse_i),  ds_ij = p_ij (dO_i·v_j − delta_i),  dQ_i = scale Σ_j ds_ij k_j
// where delta_i = dO_i·O_i. Keys are walked and read as in attention_forward.wgsl; layouts and
// info as there.

@group(0) @binding(0) var<storage, read_write> q: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> k: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> v: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> grad_out: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> lse: array<f32>;
@group(0) @binding(5) var<storage, read_write> delta: array<f32>;
@group(0) @binding(6) var<storage, read_write> grad_q: array<vec4<f32>>;
@group(0) @binding(7) var<storage, read_write> info: array<u32>;

// Head dimension in vec4 units.
const D: u32 = {{ head_dim_vec4 }}u;
const BLOCK: u32 = {{ block }}u;

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
    let row = min(first_row + lid, q_len - 1u);
    let pos = q_start + row;
    let first_pos = q_start + first_row;
    let key_begin = select(0u, first_pos + 1u - min(window, first_pos + 1u), window != 0u);
    let key_end = min(kv_len, q_start + min(first_row + BLOCK, q_len));

    var qr: array<vec4<f32>, D>;
    var gr: array<vec4<f32>, D>;
    var acc: array<vec4<f32>, D>;
    let base = (bh * q_len + row) * D;
    for (var d = 0u; d < D; d++) {
        qr[d] = q[base + d] * scale;
        gr[d] = grad_out[base + d];
        acc[d] = vec4<f32>(0.0);
    }
    let row_lse = lse[bh * q_len + row];
    let row_delta = delta[bh * q_len + row];

    for (var j = key_begin; j < key_end; j++) {
        let key = kv_base + j * D;
        var s = 0.0;
        var dp = 0.0;
        for (var d = 0u; d < D; d++) {
            s += dot(qr[d], k[key + d]);
            dp += dot(gr[d], v[key + d]);
        }
        let visible = j <= pos && (window == 0u || pos - j < window);
        let ds = select(0.0, exp(s - row_lse) * (dp - row_delta), visible);
        for (var d = 0u; d < D; d++) {
            acc[d] += ds * k[key + d];
        }
    }

    if first_row + lid < q_len {
        for (var d = 0u; d < D; d++) {
            grad_q[base + d] = acc[d] * scale;
        }
    }
}
