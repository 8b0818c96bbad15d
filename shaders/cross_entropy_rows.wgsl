// Per row of logits: the log-sum-exp and the negative log-likelihood of the target, in one pass
// (each invocation keeps a running max and sum; the workgroup merges them pairwise).
//
// logits: [rows, vocab]; targets: [rows]; lse, nll: [rows]. info: rows, vocab.
// One workgroup per row.

@group(0) @binding(0) var<storage, read_write> logits: array<f32>;
@group(0) @binding(1) var<storage, read_write> targets: array<u32>;
@group(0) @binding(2) var<storage, read_write> lse: array<f32>;
@group(0) @binding(3) var<storage, read_write> nll: array<f32>;
@group(0) @binding(4) var<storage, read_write> info: array<u32>;

const BLOCK: u32 = {{ block }}u;
const NEG: f32 = -3.0e38;

var<workgroup> maxes: array<f32, {{ block }}>;
var<workgroup> sums: array<f32, {{ block }}>;

@compute @workgroup_size({{ block }}, 1, 1)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let params = uniform_info(lid, 2u);
    let vocab = params[1];
    let row = wg.x;
    let base = row * vocab;

    var m = NEG;
    var s = 0.0;
    for (var c = lid; c < vocab; c += BLOCK) {
        let x = logits[base + c];
        if x > m {
            s = s * exp(m - x) + 1.0;
            m = x;
        } else {
            s += exp(x - m);
        }
    }
    maxes[lid] = m;
    sums[lid] = s;
    workgroupBarrier();
    for (var stride = BLOCK / 2u; stride > 0u; stride /= 2u) {
        if lid < stride {
            let m1 = maxes[lid];
            let m2 = maxes[lid + stride];
            let mm = max(m1, m2);
            sums[lid] = sums[lid] * exp(m1 - mm) + sums[lid + stride] * exp(m2 - mm);
            maxes[lid] = mm;
        }
        workgroupBarrier();
    }
    if lid == 0u {
        let row_lse = maxes[0] + log(sums[0]);
        lse[row] = row_lse;
        nll[row] = row_lse - logits[base + targets[row]];
    }
}
