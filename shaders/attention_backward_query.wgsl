// Causal grouped-query attention, backward for the queries: one invocation per query row,
// recomputing the probabilities from the saved log-sum-exp.
//   p_ij = exp(scale · q_i·k_j − lse_i),  ds_ij = p_ij (dO_i·v_j − delta_i),  dQ_i = scale Σ_j ds_ij k_j
// where delta_i = dO_i·O_i. Layouts and info as in attention_forward.wgsl.

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
const TILE: u32 = {{ tile }}u;

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
    let key_end = min(kv_len, q_start + min(first_row + BLOCK, q_len));

    var qr: array<vec4<f32>, D>;
    var gr: array<vec4<f32>, D>;
    var acc: array<vec4<f32>, D>;
    var row_lse = 0.0;
    var row_delta = 0.0;
    if in_range {
        let base = (bh * q_len + row) * D;
        for (var d = 0u; d < D; d++) {
            qr[d] = q[base + d] * scale;
            gr[d] = grad_out[base + d];
            acc[d] = vec4<f32>(0.0);
        }
        row_lse = lse[bh * q_len + row];
        row_delta = delta[bh * q_len + row];
    }

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
            for (var jj = 0u; jj < TILE; jj++) {
                let j = start + jj;
                if j < kv_len && j <= pos && (window == 0u || pos - j < window) {
                    var s = 0.0;
                    var dp = 0.0;
                    for (var d = 0u; d < D; d++) {
                        s += dot(qr[d], k_tile[jj * D + d]);
                        dp += dot(gr[d], v_tile[jj * D + d]);
                    }
                    let ds = exp(s - row_lse) * (dp - row_delta);
                    for (var d = 0u; d < D; d++) {
                        acc[d] += ds * k_tile[jj * D + d];
                    }
                }
            }
        }
        workgroupBarrier();
    }

    if in_range {
        let base = (bh * q_len + row) * D;
        for (var d = 0u; d < D; d++) {
            grad_q[base + d] = acc[d] * scale;
        }
    }
}
