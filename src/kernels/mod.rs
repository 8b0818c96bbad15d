//! Fused kernels for the training hot paths.
//!
//! Model code calls the functions here. Each one runs a hand-written WGSL kernel from `shaders/`
//! when its tensors live on a wgpu device (through Burn's backend-extension mechanism, with a
//! custom backward pass under autodiff), and the same computation on the CPU in Burn's tensor
//! operations and passes of our own on every core; the fused path can be switched off, for plain
//! tensor operations everywhere, to measure it. The attention kernels come in two shapes, one for
//! software Vulkan (lavapipe) and one for hardware GPUs (`shape.rs` picks); the matmul kernel is
//! written for software Vulkan and runs only there.

mod adamw;
mod attention;
mod autodiff;
mod cpu_attention;
mod cpu_matmul;
mod cpu_passes;
mod cross_entropy;
mod dropout;
mod extension;
mod fallback;
mod launch;
mod lora_update;
mod matmul;
mod packed;
mod report;
mod rms_norm;
mod rotary;
mod shape;
mod split;
mod squared_norm;
mod swiglu;
mod wgsl;

pub use adamw::{AdamWStep, adamw, adamw_reference};
pub use attention::{Scores, attention, attention_reference, padding_mask};
pub use cross_entropy::{cross_entropy, cross_entropy_blocks, cross_entropy_packed};
pub use dropout::{dropout, dropout_matmul, seed_dropout};
pub use extension::FusedKernels;
pub use lora_update::{LoraFactors, add_lora_updates};
pub use matmul::matmul;
pub use packed::{dense as dense_packed, packed_matmul};
pub use report::{KERNEL_NEEDS, KernelNeeds, describe_kernels, shortfalls};
pub use rms_norm::{rms_norm, rms_norm_reference};
pub use rotary::{rotary, rotary_reference};
pub use shape::{ForcedShape, KernelShape, force_kernel_shape, hardware_launches, kernel_shape};
pub use split::split_columns;
pub use squared_norm::squared_norm;
pub use swiglu::swiglu;
pub use wgsl::{KernelVariant, every_variant as every_kernel_variant, supports_head_dim};

use burn::backend::DispatchDevice;
use burn::tensor::Device;

/// The kernels' unit tests' comparison: the same shape, and no value more than 1e-4 apart.
#[cfg(test)]
fn assert_close<const D: usize>(what: &str, ours: burn::tensor::Tensor<D>, reference: burn::tensor::Tensor<D>) {
    assert_eq!(ours.dims(), reference.dims(), "{what}: shape");
    let values = |t: burn::tensor::Tensor<D>| t.into_data().try_into_vec::<f32>().expect("f32 values");
    let worst = values(ours).iter().zip(values(reference)).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    assert!(worst <= 1e-4, "{what}: max |difference| {worst:e}");
}

/// The backend device under `device`'s autodiff layer, if it has one.
fn backend_device(device: &Device) -> &DispatchDevice {
    fn without_autodiff(device: &DispatchDevice) -> &DispatchDevice {
        match device {
            DispatchDevice::Autodiff(inner) => without_autodiff(inner),
            other => other,
        }
    }
    without_autodiff(device.as_dispatch())
}

/// Whether `device` (autodiff or not) is Burn's CPU backend, where the CPU passes apply.
pub fn is_cpu(device: &Device) -> bool {
    matches!(backend_device(device), DispatchDevice::Flex(_))
}

/// Whether the fused operations run for tensors on `device` when asked for (`fused`): on wgpu only
/// where the adapter offers what every WGSL kernel needs ([`KERNEL_NEEDS`]). On an adapter short
/// of it (four storage buffers per stage, as on older GPUs) Burn's generic operations run
/// instead, which CubeCL sizes to the adapter's limits.
pub fn fused_on(fused: bool, device: &Device) -> bool {
    // Asked at every launch: the adapter's answer is worked out once.
    static WGSL_FITS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let wgsl_fits = || *WGSL_FITS.get_or_init(|| crate::device::wgpu_adapter_limits().is_some_and(|a| shortfalls(a).is_empty()));
    fused && (!is_wgpu(device) || wgsl_fits())
}

/// Whether `device` (autodiff or not) runs on wgpu, where the WGSL kernels apply.
pub fn is_wgpu(device: &Device) -> bool {
    matches!(backend_device(device), DispatchDevice::Cube(burn::cubecl::Device::Wgpu(_)))
}
