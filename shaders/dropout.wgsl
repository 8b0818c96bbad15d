// Dropout as one pass, its mask a function of each element's index and a seed (src/kernels/dropout.rs):
//   out = x / keep where hash(i) falls below keep, else 0.
// The backward pass is the same kernel on the gradient with the same seed, so no mask is stored.
// The hash is cpu_passes.rs's `dropout_hash`, bit for bit, so both backends draw the same mask.
// x, out: [n]; seed: two f32 (their bits are the seed words); params: n, the keep threshold
// (keep · 2²⁴), 1 / keep (f32 bits).

@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> seed: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<storage, read_write> params: array<u32>;

// Chris Wellons' lowbias32: a 32-bit integer hash with low bias.
fn lowbias32(value: u32) -> u32 {
    var h = value;
    h ^= h >> 16u;
    h *= 0x7feb352du;
    h ^= h >> 15u;
    h *= 0x846ca68bu;
    h ^= h >> 16u;
    return h;
}

@compute @workgroup_size({{ block }}, 1, 1)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = (wg.y * 65535u + wg.x) * {{ block }}u + lid;
    if i >= params[0] {
        return;
    }
    let h = lowbias32(lowbias32(i ^ bitcast<u32>(seed[0])) ^ bitcast<u32>(seed[1]));
    if (h >> 8u) < params[1] {
        out[i] = x[i] * bitcast<f32>(params[2]);
    } else {
        out[i] = 0.0;
    }
}
