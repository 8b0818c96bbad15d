// One AdamW step for one parameter tensor, as torch.optim.AdamW computes it:
//   g ← g · grad_scale
//   m ← β1 m + (1 − β1) g,  v ← β2 v + (1 − β2) g²
//   p ← p (1 − lr·wd) − (lr / (1 − β1ᵗ)) · m / (√v / √(1 − β2ᵗ) + ε)
// p, g, m, v: [n]; new_p, new_m, new_v: [n].
// coefficients (f32): lr, beta1, beta2, eps, decay (1 − lr·wd), bias1, bias2, grad_scale; info: n.

@group(0) @binding(0) var<storage, read_write> p: array<f32>;
@group(0) @binding(1) var<storage, read_write> g: array<f32>;
@group(0) @binding(2) var<storage, read_write> m: array<f32>;
@group(0) @binding(3) var<storage, read_write> v: array<f32>;
@group(0) @binding(4) var<storage, read_write> new_p: array<f32>;
@group(0) @binding(5) var<storage, read_write> new_m: array<f32>;
@group(0) @binding(6) var<storage, read_write> new_v: array<f32>;
@group(0) @binding(7) var<storage, read_write> coefficients: array<f32>;
@group(0) @binding(8) var<storage, read_write> info: array<u32>;

@compute @workgroup_size({{ block }}, 1, 1)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = (wg.y * 65535u + wg.x) * {{ block }}u + lid;
    if i >= info[0] {
        return;
    }
    let lr = coefficients[0];
    let beta1 = coefficients[1];
    let beta2 = coefficients[2];
    let eps = coefficients[3];
    let decay = coefficients[4];
    let bias1 = coefficients[5];
    let bias2 = coefficients[6];
    let grad = g[i] * coefficients[7];

    let mi = beta1 * m[i] + (1.0 - beta1) * grad;
    let vi = beta2 * v[i] + (1.0 - beta2) * grad * grad;
    new_m[i] = mi;
    new_v[i] = vi;
    new_p[i] = p[i] * decay - (lr / bias1) * mi / (sqrt(vi) / sqrt(bias2) + eps);
}
