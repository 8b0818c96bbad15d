// What the two hardware-shaped kernels that walk keys for a block of query rows share (the
// forward and the query gradient; launch.rs puts this file after attention_common.wgsl): the
// block's place, and the key and value tiles staged in workgroup memory. Each kernel declares
// the bindings `q`, `k`, `v` and `info`, and the constants D, BLOCK and TILE.

var<workgroup> tile_k: array<vec4<f32>, TILE * D>;
var<workgroup> tile_v: array<vec4<f32>, TILE * D>;
// The keys some row of the workgroup sees, loaded uniformly so that the tile loop may hold barriers.
var<workgroup> shared_keys: vec2<u32>;

// An invocation's query row, in the workgroup's block of BLOCK rows.
struct QueryRow {
    // Batch and head, as one index.
    bh: u32,
    // Where the row's key/value head starts in `k` and `v`.
    kv_base: u32,
    // The row (rows past the last compute a copy of it and store nothing), its absolute position,
    // and where it starts in `q`.
    row: u32,
    pos: u32,
    base: u32,
    // Whether the row is a real one, whose results are stored.
    stored: bool,
}

// The keys some row of the workgroup's block sees: `begin..end`, the same for every invocation.
// Kept apart from `QueryRow`, whose other fields vary by invocation, so that a shader compiler's
// uniformity analysis (Tint's is per value) sees the tile loop over it as uniform. Must be called
// from uniform control flow: it loads the range through workgroup memory.
fn block_keys(a: Attention, wg: vec3<u32>, lid: u32) -> vec2<u32> {
    if lid == 0u {
        shared_keys = key_range(a, wg.x * BLOCK, BLOCK);
    }
    return workgroupUniformLoad(&shared_keys);
}

fn query_row(a: Attention, wg: vec3<u32>, lid: u32) -> QueryRow {
    let bh = wg.y;
    let b = bh / a.heads;
    let h = bh % a.heads;
    let first_row = wg.x * BLOCK;
    let row = min(first_row + lid, a.q_len - 1u);
    return QueryRow(
        bh,
        (b * a.kv_heads + h / (a.heads / a.kv_heads)) * a.kv_len * D,
        row,
        a.q_start + row,
        (bh * a.q_len + row) * D,
        first_row + lid < a.q_len,
    );
}

// Stages `count` keys and values from key `first` into the tiles, the whole workgroup together;
// the barriers keep the previous tile until every invocation is done with it. Uniform control
// flow only.
fn stage_tile(r: QueryRow, first: u32, count: u32, lid: u32) {
    workgroupBarrier();
    for (var i = lid; i < count * D; i += BLOCK) {
        tile_k[i] = k[r.kv_base + first * D + i];
        tile_v[i] = v[r.kv_base + first * D + i];
    }
    workgroupBarrier();
}
