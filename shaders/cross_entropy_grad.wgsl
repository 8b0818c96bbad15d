// The gradient of the summed cross-entropy with respect to the logits, written over them:
// softmax(logits) − one_hot(target), from the log-sum-exp of cross_entropy_rows.wgsl.
//
// logits: [rows, vocab] (overwritten); lse, targets: [rows]. info: rows, vocab.
// Workgroups: (ceil(vocab / block), rows).

@group(0) @binding(0) var<storage, read_write> logits: array<f32>;
@group(0) @binding(1) var<storage, read_write> targets: array<u32>;
@group(0) @binding(2) var<storage, read_write> lse: array<f32>;
@group(0) @binding(3) var<storage, read_write> info: array<u32>;

@compute @workgroup_size({{ block }}, 1, 1)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let vocab = info[1];
    let row = wg.y;
    let column = wg.x * {{ block }}u + lid;
    if column >= vocab {
        return;
    }
    let index = row * vocab + column;
    var grad = exp(logits[index] - lse[row]);
    if column == targets[row] {
        grad -= 1.0;
    }
    logits[index] = grad;
}
