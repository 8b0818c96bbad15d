// Causal grouped-query attention, forward, in FlashAttention-2's shape for hardware GPUs:
// O = softmax(scale · Q Kᵀ + mask) V and the row log-sum-exp, nothing of size [queries × keys]
// stored. A workgroup of BLOCK invocations takes BLOCK query rows, one each, and walks the keys in
// tiles of TILE rows that it stages together in workgroup memory. Each invocation scores its row
// against the whole tile, then rescales its output once per tile (online softmax). An invocation
// holds its query row, its output row and one tile's scores.

// Query rows (and invocations) per workgroup.
const BLOCK: u32 = {{ block }}u;
// Keys per tile staged in workgroup memory.
const TILE: u32 = {{ tile }}u;
const NEG: f32 = -3.0e38;

@compute @workgroup_size({{ block }}, 1, 1)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let a = read_info();
    let keys = block_keys(a, wg, lid);
    let r = query_row(a, wg, lid);
    var query: array<vec4<f32>, D>;
    var acc: array<vec4<f32>, D>;
    for (var d = 0u; d < D; d++) {
        query[d] = q[r.base + d] * a.scale;
    }
    var m = NEG;
    var l = 0.0;
    var s: array<f32, TILE>;

    for (var t0 = keys.x; t0 < keys.y; t0 += TILE) {
        let count = min(TILE, keys.y - t0);
        stage_tile(r, t0, count, lid);

        var tile_max = NEG;
        for (var c = 0u; c < count; c++) {
            var score = 0.0;
            for (var d = 0u; d < D; d++) {
                score += dot(query[d], tile_k[c * D + d]);
            }
            let visible = sees(a, r.pos, t0 + c);
            s[c] = select(NEG, score, visible);
            tile_max = max(tile_max, s[c]);
        }
        let m_new = max(m, tile_max);
        let correction = exp(m - m_new);
        l *= correction;
        for (var d = 0u; d < D; d++) {
            acc[d] *= correction;
        }
        for (var c = 0u; c < count; c++) {
            let p = select(0.0, exp(s[c] - m_new), s[c] > NEG);
            l += p;
            for (var d = 0u; d < D; d++) {
                acc[d] += p * tile_v[c * D + d];
            }
        }
        m = m_new;
    }

    if r.stored {
        let inv = 1.0 / l;
        for (var d = 0u; d < D; d++) {
            o[r.base + d] = acc[d] * inv;
        }
        lse[r.bh * a.q_len + r.row] = m + log(l);
    }
}
