// Causal grouped-query attention, backward for keys and values: one invocation per key row of a
// key/value head, summing over every query head that shares it and every query that sees it.
//   dV_j = Σ_i p_ij dO_i,  dK_j = scale Σ_i ds_ij q_i   (p, ds as in attention_backward_query.wgsl)
// grad_k, grad_v: [batch, kv_heads, kv_len, D]. info as in attention_forward.wgsl.

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
const TILE: u32 = {{ tile }}u;

var<workgroup> q_tile: array<vec4<f32>, {{ tile_vec4s }}>;
var<workgroup> g_tile: array<vec4<f32>, {{ tile_vec4s }}>;
var<workgroup> lse_tile: array<f32, {{ tile }}>;
var<workgroup> delta_tile: array<f32, {{ tile }}>;

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
    let group = heads / kv_heads;

    let bkv = wg.y;
    let b = bkv / kv_heads;
    let kvh = bkv % kv_heads;
    let first_key = wg.x * BLOCK;
    let key = first_key + lid;
    let in_range = key < kv_len;
    let kv_row = (bkv * kv_len + key) * D;

    var kr: array<vec4<f32>, D>;
    var vr: array<vec4<f32>, D>;
    var dk: array<vec4<f32>, D>;
    var dv: array<vec4<f32>, D>;
    if in_range {
        for (var d = 0u; d < D; d++) {
            kr[d] = k[kv_row + d] * scale;
            vr[d] = v[kv_row + d];
            dk[d] = vec4<f32>(0.0);
            dv[d] = vec4<f32>(0.0);
        }
    }
    // The first query that can see this workgroup's first key (uniform across the workgroup).
    var query_begin = 0u;
    if first_key > q_start {
        query_begin = first_key - q_start;
    }

    for (var g = 0u; g < group; g++) {
        let bh = b * heads + kvh * group + g;
        for (var start = query_begin; start < q_len; start += TILE) {
            for (var e = lid; e < TILE * D; e += BLOCK) {
                let i = start + e / D;
                if i < q_len {
                    q_tile[e] = q[(bh * q_len + i) * D + e % D];
                    g_tile[e] = grad_out[(bh * q_len + i) * D + e % D];
                }
            }
            for (var e = lid; e < TILE; e += BLOCK) {
                let i = start + e;
                if i < q_len {
                    lse_tile[e] = lse[bh * q_len + i];
                    delta_tile[e] = delta[bh * q_len + i];
                }
            }
            workgroupBarrier();
            if in_range {
                for (var ii = 0u; ii < TILE; ii++) {
                    let i = start + ii;
                    let pos = q_start + i;
                    if i < q_len && key <= pos && (window == 0u || pos - key < window) {
                        var s = 0.0;
                        var dp = 0.0;
                        for (var d = 0u; d < D; d++) {
                            s += dot(q_tile[ii * D + d], kr[d]);
                            dp += dot(g_tile[ii * D + d], vr[d]);
                        }
                        let p = exp(s - lse_tile[ii]);
                        let ds = p * (dp - delta_tile[ii]);
                        for (var d = 0u; d < D; d++) {
                            dv[d] += p * g_tile[ii * D + d];
                            dk[d] += ds * q_tile[ii * D + d];
                        }
                    }
                }
            }
            workgroupBarrier();
        }
    }

    if in_range {
        for (var d = 0u; d < D; d++) {
            grad_k[kv_row + d] = dk[d] * scale;
            grad_v[kv_row + d] = dv[d];
        }
    }
}
