// Causal grouped-query attention, backward for keys and values, in the shape of
// flash_attention_forward.wgsl: one key row of a key/value head per invocation, the queries of
// every head that shares it staged in tiles (with their output gradients, log-sum-exp and delta).
//   dV_j = Σ_i p_ij dO_i,  dK_j = scale Σ_i ds_ij q_i   (p, ds as in flash_attention_backward_query.wgsl)
// An invocation holds its key and value rows and their two gradient rows.

// Key rows (and invocations) per workgroup.
const BLOCK: u32 = {{ block }}u;
// Query rows per tile staged in workgroup memory.
const TILE: u32 = {{ tile }}u;

var<workgroup> tile_q: array<vec4<f32>, TILE * D>;
var<workgroup> tile_grad: array<vec4<f32>, TILE * D>;
var<workgroup> tile_lse: array<f32, TILE>;
var<workgroup> tile_delta: array<f32, TILE>;
// The queries that see some key of the workgroup, and the query heads per key/value head.
var<workgroup> query_span: vec3<u32>;

@compute @workgroup_size({{ block }}, 1, 1)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let a = read_info();

    let bkv = wg.y;
    let b = bkv / a.kv_heads;
    let kvh = bkv % a.kv_heads;
    let first_key = wg.x * BLOCK;
    if lid == 0u {
        query_span = vec3<u32>(query_range(a, first_key, BLOCK), a.heads / a.kv_heads);
    }
    let span = workgroupUniformLoad(&query_span);

    // Keys past the last compute a copy of it and store nothing.
    let key = min(first_key + lid, a.kv_len - 1u);
    let row = (bkv * a.kv_len + key) * D;
    var key_row: array<vec4<f32>, D>;
    var value_row: array<vec4<f32>, D>;
    var dk: array<vec4<f32>, D>;
    var dv: array<vec4<f32>, D>;
    for (var d = 0u; d < D; d++) {
        key_row[d] = k[row + d] * a.scale;
        value_row[d] = v[row + d];
    }

    for (var g = 0u; g < span.z; g++) {
        let bh = b * a.heads + kvh * span.z + g;
        for (var t0 = span.x; t0 < span.y; t0 += TILE) {
            let count = min(TILE, span.y - t0);
            workgroupBarrier();
            let first = (bh * a.q_len + t0) * D;
            for (var i = lid; i < count * D; i += BLOCK) {
                tile_q[i] = q[first + i];
                tile_grad[i] = grad_out[first + i];
            }
            if lid < count {
                tile_lse[lid] = lse[bh * a.q_len + t0 + lid];
                tile_delta[lid] = delta[bh * a.q_len + t0 + lid];
            }
            workgroupBarrier();

            for (var c = 0u; c < count; c++) {
                var score = 0.0;
                var dp = 0.0;
                for (var d = 0u; d < D; d++) {
                    score += dot(tile_q[c * D + d], key_row[d]);
                    dp += dot(tile_grad[c * D + d], value_row[d]);
                }
                let visible = sees(a, a.q_start + t0 + c, key);
                let p = select(0.0, exp(score - tile_lse[c]), visible);
                let ds = p * (dp - tile_delta[c]);
                for (var d = 0u; d < D; d++) {
                    dv[d] += p * tile_grad[c * D + d];
                    dk[d] += ds * tile_q[c * D + d];
                }
            }
        }
    }

    if first_key + lid < a.kv_len {
        let grad_v = grad_v_start(a);
        for (var d = 0u; d < D; d++) {
            grad_kv[row + d] = dk[d] * a.scale;
            grad_kv[grad_v + row + d] = dv[d];
        }
    }
}
