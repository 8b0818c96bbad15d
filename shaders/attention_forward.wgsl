// Causal grouped-query attention, forward, one invocation per query row (FlashAttention-style
// online softmax): O = softmax(scale · Q Kᵀ + mask) V, and the row log-sum-exp for the backward
// pass. Nothing of size [queries × keys] is ever stored.
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
const TILE: u32 = {{ tile }}u;
const NEG: f32 = -3.0e38;

var<workgroup> k_tile: array<vec4<f32>, {{ tile_vec4s }}>;
var<workgroup> v_tile: array<vec4<f32>, {{ tile_vec4s }}>;

// The shape of the problem, read once into workgroup memory: values loaded with
// workgroupUniformLoad are uniform, so the loops that contain barriers may depend on them.
var<workgroup> shared_info: array<u32, 8>;

@compute @workgroup_size({{ block }}, 1, 1)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    if lid == 0u {
        for (var i = 0u; i < 8u; i++) {
            shared_info[i] = info[i];
        }
    }
    let params = workgroupUniformLoad(&shared_info);
    let heads = params[1];
    let kv_heads = params[2];
    let q_len = params[3];
    let kv_len = params[4];
    let q_start = params[5];
    let window = params[6];
    let scale = bitcast<f32>(params[7]);

    let bh = wg.y;
    let b = bh / heads;
    let h = bh % heads;
    let kv_base = (b * kv_heads + h / (heads / kv_heads)) * kv_len * D;

    let first_row = wg.x * BLOCK;
    let row = first_row + lid;
    let in_range = row < q_len;
    let pos = q_start + row;
    // The keys any row of this workgroup can see (uniform across the workgroup).
    let key_end = min(kv_len, q_start + min(first_row + BLOCK, q_len));

    var qr: array<vec4<f32>, D>;
    var acc: array<vec4<f32>, D>;
    if in_range {
        let base = (bh * q_len + row) * D;
        for (var d = 0u; d < D; d++) {
            qr[d] = q[base + d] * scale;
            acc[d] = vec4<f32>(0.0);
        }
    }
    var m = NEG;
    var l = 0.0;

    for (var start = 0u; start < key_end; start += TILE) {
        for (var e = lid; e < TILE * D; e += BLOCK) {
            let j = start + e / D;
            if j < kv_len {
                k_tile[e] = k[kv_base + j * D + e % D];
                v_tile[e] = v[kv_base + j * D + e % D];
            }
        }
        workgroupBarrier();
        if in_range {
            // The keys of this tile the row sees: a contiguous range, so the inner loop has no mask.
            let lo = select(0u, pos + 1u - min(window, pos + 1u), window != 0u);
            let first = max(start, lo);
            let last = min(min(start + TILE, kv_len), pos + 1u);
            for (var j = first; j < last; j++) {
                let jj = j - start;
                var s = 0.0;
                for (var d = 0u; d < D; d++) {
                    s += dot(qr[d], k_tile[jj * D + d]);
                }
                if s > m {
                    let correction = exp(m - s);
                    l *= correction;
                    for (var d = 0u; d < D; d++) {
                        acc[d] *= correction;
                    }
                    m = s;
                }
                let p = exp(s - m);
                l += p;
                for (var d = 0u; d < D; d++) {
                    acc[d] += p * v_tile[jj * D + d];
                }
            }
        }
        workgroupBarrier();
    }

    if in_range {
        let base = (bh * q_len + row) * D;
        let inv = 1.0 / l;
        for (var d = 0u; d < D; d++) {
            o[base + d] = acc[d] * inv;
        }
        lse[bh * q_len + row] = m + log(l);
    }
}
