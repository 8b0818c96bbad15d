// One AdamW step for one parameter tensor, as torch.optim.AdamW computes it:
//   g ← g · grad_scale
//   m ← β1 m + (1 − β1) g,  v ← β2 v + (1 − β2) g²
//   p ← p (1 − lr·wd) − (lr / (1 − β1ᵗ)) · m / (√v / √(1 − β2ᵗ) + ε)
// p, g, m, v: [n]; new_p, new_m, new_v: [n].
// info: n, then the coefficients as f32 bits: lr, beta1, beta2, eps, decay (1 − lr·wd), bias1,
// bias2, grad_scale.

@group(0) @binding(0) var<storage, read_write> p: array<f32>;
@group(0) @binding(1) var<storage, read_write> g: array<f32>;
@group(0) @binding(2) var<storage, read_write> m: array<f32>;
@group(0) @binding(3) var<storage, read_write> v: array<f32>;
@group(0) @binding(4) var<storage, read_write> new_p: array<f32>;
@group(0) @binding(5) var<storage, read_write> new_m: array<f32>;
@group(0) @binding(6) var<storage, read_write> new_v: array<f32>;
@group(0) @binding(7) var<storage, read_write> info: array<u32>;

fn coefficient(i: u32) -> f32 {
    return bitcast<f32>(info[1u + i]);
}

@compute @workgroup_size({{ block }}, 1, 1)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = (wg.y * 65535u + wg.x) * {{ block }}u + lid;
    if i >= info[0] {
        return;
    }
    let lr = coefficient(0u);
    let beta1 = coefficient(1u);
    let beta2 = coefficient(2u);
    let eps = coefficient(3u);
    let decay = coefficient(4u);
    let bias1 = coefficient(5u);
    let bias2 = coefficient(6u);
    let grad = g[i] * coefficient(7u);

    let mi = beta1 * m[i] + (1.0 - beta1) * grad;
    let vi = beta2 * v[i] + (1.0 - beta2) * grad * grad;
    new_m[i] = mi;
    new_v[i] = vi;
    new_p[i] = p[i] * decay - (lr / bias1) * mi / (sqrt(vi) / sqrt(bias2) + eps);
}
