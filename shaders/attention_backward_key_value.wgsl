// Causal grouped-query attention, backward for keys and values: one invocation per key row of a
// key/value head, summing over every query head that shares it and every query that sees it.
//   dV_j = Σ_i p_ij dO_i,  dK_j = scale Σ_i ds_ij q_i   (p, ds as in attention_backward_query.wgsl)
// grad_k, grad_v: [batch, kv_heads, kv_len, D]. Queries are walked and read the way
// attention_forward.wgsl walks keys; info as there.

@group(0) @binding(0) var<storage, read_write> q: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> k: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> v: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> grad_out: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> lse: array<f32>;
@group(0) @binding(5) var<storage, read_write> delta: array<f32>;
@group(0) @binding(6) var<storage, read_write> grad_k: array<vec4<f32>>;
@group(0) @binding(7) var<storage, read_write> grad_v: array<vec4<f32>>;
@group(0) @binding(8) var<storage, read_write> info: array<u32>;

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
    let group = heads / kv_heads;

    let bkv = wg.y;
    let b = bkv / kv_heads;
    let kvh = bkv % kv_heads;
    let first_key = wg.x * BLOCK;
    // Invocations past the last key compute a copy of it and store nothing.
    let key = min(first_key + lid, kv_len - 1u);
    let kv_row = (bkv * kv_len + key) * D;

    var kr: array<vec4<f32>, D>;
    var vr: array<vec4<f32>, D>;
    var dk: array<vec4<f32>, D>;
    var dv: array<vec4<f32>, D>;
    for (var d = 0u; d < D; d++) {
        kr[d] = k[kv_row + d] * scale;
        vr[d] = v[kv_row + d];
        dk[d] = vec4<f32>(0.0);
        dv[d] = vec4<f32>(0.0);
    }
    // The queries that see some key of this workgroup (the same for every invocation).
    let last_key = min(first_key + BLOCK, kv_len) - 1u;
    let query_begin = select(0u, first_key - q_start, first_key > q_start);
    let window_end = select(0u, last_key + window - q_start, last_key + window > q_start);
    let query_end = select(q_len, min(q_len, window_end), window != 0u);

    for (var g = 0u; g < group; g++) {
        let bh = b * heads + kvh * group + g;
        for (var i = query_begin; i < query_end; i++) {
            let query = (bh * q_len + i) * D;
            let pos = q_start + i;
            var s = 0.0;
            var dp = 0.0;
            for (var d = 0u; d < D; d++) {
                s += dot(q[query + d], kr[d]);
                dp += dot(grad_out[query + d], vr[d]);
            }
            let visible = key <= pos && (window == 0u || pos - key < window);
            let p = select(0.0, exp(s - lse[bh * q_len + i]), visible);
            let ds = p * (dp - delta[bh * q_len + i]);
            for (var d = 0u; d < D; d++) {
                dv[d] += p * grad_out[query + d];
                dk[d] += ds * q[query + d];
            }
        }
    }

    if first_key + lid < kv_len {
        for (var d = 0u; d < D; d++) {
            grad_k[kv_row + d] = dk[d] * scale;
            grad_v[kv_row + d] = dv[d];
        }
    }
}
