// Causal grouped-query attention, forward, in FlashAttention-2's shape for hardware GPUs:
// O = softmax(scale · Q Kᵀ + mask) V and the row log-sum-exp, nothing of size [queries × keys]
// stored. A workgroup of BLOCK invocations takes BLOCK query rows, one each, and walks the keys in
// tiles of TILE rows that it stages together in workgroup memory. Each invocation scores its row
// against the whole tile, then rescales its output once per tile (online softmax). An invocation
// holds its query row, its output row and one tile's scores.
//
// Layouts as in attention_forward.wgsl.

@group(0) @binding(0) var<storage, read_write> q: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> k: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> v: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> o: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> lse: array<f32>;
@group(0) @binding(5) var<storage, read_write> info: array<u32>;

// Head dimension in vec4 units.
const D: u32 = {{ head_dim_vec4 }}u;
// Query rows (and invocations) per workgroup.
const BLOCK: u32 = {{ block }}u;
// Keys per tile staged in workgroup memory.
const TILE: u32 = {{ tile }}u;
const NEG: f32 = -3.0e38;

var<workgroup> tile_k: array<vec4<f32>, TILE * D>;
var<workgroup> tile_v: array<vec4<f32>, TILE * D>;
// The keys some row of the workgroup sees, loaded uniformly so that the tile loop may hold barriers.
var<workgroup> shared_keys: vec2<u32>;

@compute @workgroup_size({{ block }}, 1, 1)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let a = read_info();

    let bh = wg.y;
    let b = bh / a.heads;
    let h = bh % a.heads;
    let kv_base = (b * a.kv_heads + h / (a.heads / a.kv_heads)) * a.kv_len * D;

    let first_row = wg.x * BLOCK;
    if lid == 0u {
        shared_keys = key_range(a, first_row, BLOCK);
    }
    let keys = workgroupUniformLoad(&shared_keys);

    // Rows past the last compute a copy of it and store nothing.
    let row = min(first_row + lid, a.q_len - 1u);
    let pos = a.q_start + row;
    let base = (bh * a.q_len + row) * D;
    var query: array<vec4<f32>, D>;
    var acc: array<vec4<f32>, D>;
    for (var d = 0u; d < D; d++) {
        query[d] = q[base + d] * a.scale;
    }
    var m = NEG;
    var l = 0.0;
    var s: array<f32, TILE>;

    for (var t0 = keys.x; t0 < keys.y; t0 += TILE) {
        let count = min(TILE, keys.y - t0);
        workgroupBarrier();
        for (var i = lid; i < count * D; i += BLOCK) {
            tile_k[i] = k[kv_base + t0 * D + i];
            tile_v[i] = v[kv_base + t0 * D + i];
        }
        workgroupBarrier();

        var tile_max = NEG;
        for (var c = 0u; c < count; c++) {
            var score = 0.0;
            for (var d = 0u; d < D; d++) {
                score += dot(query[d], tile_k[c * D + d]);
            }
            let visible = sees(a, pos, t0 + c);
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

    if first_row + lid < a.q_len {
        let inv = 1.0 / l;
        for (var d = 0u; d < D; d++) {
            o[base + d] = acc[d] * inv;
        }
        lse[bh * a.q_len + row] = m + log(l);
    }
}
