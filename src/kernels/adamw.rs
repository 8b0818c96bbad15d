//! The AdamW update of one parameter tensor: one fused WGSL dispatch on wgpu, and one pass on every
//! core on the CPU (into the parameter's and the moments' own memory where no one else holds it),
//! instead of a dozen element-wise operations, each a pass over the parameter on one core (on the
//! CPU, 15 % of a full fine-tuning step: BENCHMARKS.md).

use burn::backend::Dispatch;
use burn::tensor::Tensor;

use super::extension::FusedKernels;

/// The numbers of one AdamW step (see `train::optimizer`).
#[derive(Clone, Copy, Debug)]
pub struct AdamWStep {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// `1 − lr · weight_decay`.
    pub decay: f64,
    /// `1 − β1ᵗ` and `1 − β2ᵗ`.
    pub bias1: f64,
    pub bias2: f64,
    /// Multiplies the gradient first (global-norm clipping).
    pub grad_scale: f64,
}

impl AdamWStep {
    /// The kernel's coefficients, in the order `FusedKernels::fused_adamw` takes them.
    pub(super) fn as_f32(&self) -> [f32; 8] {
        [self.lr, self.beta1, self.beta2, self.eps, self.decay, self.bias1, self.bias2, self.grad_scale].map(|x| x as f32)
    }
}

/// Updates `param` with `grad`; moments `None` are zero (the first step). Returns the new
/// parameter and moments. All tensors are flat and outside autodiff.
pub fn adamw(
    param: Tensor<1>,
    grad: Tensor<1>,
    moments: Option<(Tensor<1>, Tensor<1>)>,
    step: &AdamWStep,
    fused: bool,
) -> (Tensor<1>, Tensor<1>, Tensor<1>) {
    let device = param.device();
    if super::fused_on(fused, &device) && (super::is_wgpu(&device) || super::is_cpu(&device)) {
        let (m, v) = moments.unwrap_or_else(|| (param.zeros_like(), param.zeros_like()));
        let (p, m, v) =
            Dispatch::fused_adamw(param.into_dispatch(), grad.into_dispatch(), m.into_dispatch(), v.into_dispatch(), step.as_f32());
        (Tensor::from_dispatch(p), Tensor::from_dispatch(m), Tensor::from_dispatch(v))
    } else {
        adamw_reference(param, grad, moments, step)
    }
}

/// The same update in plain tensor operations.
pub fn adamw_reference(
    param: Tensor<1>,
    grad: Tensor<1>,
    moments: Option<(Tensor<1>, Tensor<1>)>,
    k: &AdamWStep,
) -> (Tensor<1>, Tensor<1>, Tensor<1>) {
    let g = if k.grad_scale != 1.0 { grad.mul_scalar(k.grad_scale) } else { grad };
    let (m, v) = match moments {
        Some((m, v)) => {
            (m.mul_scalar(k.beta1) + g.clone().mul_scalar(1.0 - k.beta1), v.mul_scalar(k.beta2) + g.square().mul_scalar(1.0 - k.beta2))
        }
        None => (g.clone().mul_scalar(1.0 - k.beta1), g.square().mul_scalar(1.0 - k.beta2)),
    };
    // torch: p ← p·(1 − lr·wd) − (lr / bias1) · m / (√v / √bias2 + eps)
    let denom = v.clone().sqrt().div_scalar(k.bias2.sqrt()).add_scalar(k.eps);
    let update = m.clone().div(denom).mul_scalar(k.lr / k.bias1);
    (param.mul_scalar(k.decay) - update, m, v)
}
