// Causal grouped-query attention, backward for the queries, in the shape of
// flash_attention_forward.wgsl: one query row per invocation, keys and values staged in tiles.
//   p_ij = exp(scale · q_i·k_j − lse_i),  ds_ij = p_ij (dO_i·v_j − delta_i),  dQ_i = scale Σ_j ds_ij k_j
// where delta_i = dO_i·O_i. An invocation holds its query row, its output-gradient row and its
// query-gradient row.

const BLOCK: u32 = {{ block }}u;
const TILE: u32 = {{ tile }}u;

@compute @workgroup_size({{ block }}, 1, 1)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let a = read_info();
    let keys = block_keys(a, wg, lid);
    let r = query_row(a, wg, lid);
    var query: array<vec4<f32>, D>;
    var grad: array<vec4<f32>, D>;
    var acc: array<vec4<f32>, D>;
    for (var d = 0u; d < D; d++) {
        query[d] = q[r.base + d] * a.scale;
        grad[d] = grad_out[r.base + d];
    }
    let row_lse = lse[r.bh * a.q_len + r.row];
    let row_delta = delta[r.bh * a.q_len + r.row];

    for (var t0 = keys.x; t0 < keys.y; t0 += TILE) {
        let count = min(TILE, keys.y - t0);
        stage_tile(r, t0, count, lid);

        for (var c = 0u; c < count; c++) {
            var score = 0.0;
            var dp = 0.0;
            for (var d = 0u; d < D; d++) {
                score += dot(query[d], tile_k[c * D + d]);
                dp += dot(grad[d], tile_v[c * D + d]);
            }
            let visible = sees(a, r.pos, t0 + c);
            let ds = select(0.0, exp(score - row_lse) * (dp - row_delta), visible);
            for (var d = 0u; d < D; d++) {
                acc[d] += ds * tile_k[c * D + d];
            }
        }
    }

    if r.stored {
        for (var d = 0u; d < D; d++) {
            grad_q[r.base + d] = acc[d] * a.scale;
        }
    }
}
