//! What the WGSL kernels need of a wgpu adapter, and which of them a given adapter runs: for
//! `wgtune inspect --device wgpu`, where a user sees why their GPU trains the way it does.

use super::shape::KernelShape;
use super::wgsl::{self, MATMUL_BLOCK, NORM_BLOCK, ROW_BLOCK, WORKGROUP_BYTES};
use crate::device::AdapterLimits;

/// The most any kernel variant asks of an adapter (the shader tests check every variant against
/// it): WebGPU's default limits, which every adapter offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelNeeds {
    pub invocations_per_workgroup: u32,
    pub workgroup_storage_bytes: u32,
    pub storage_buffers_per_stage: u32,
}

pub const KERNEL_NEEDS: KernelNeeds = KernelNeeds {
    invocations_per_workgroup: ROW_BLOCK as u32,
    workgroup_storage_bytes: WORKGROUP_BYTES as u32,
    storage_buffers_per_stage: 8,
};

/// The limits where `adapter` offers less than the kernels need, e.g. `4 storage buffers per
/// stage (the kernels need 8)`; empty where it offers enough.
pub fn shortfalls(adapter: &AdapterLimits) -> Vec<String> {
    let needs = KERNEL_NEEDS;
    let mut short = Vec::new();
    if adapter.invocations_per_workgroup < needs.invocations_per_workgroup {
        short.push(format!(
            "{} invocations per workgroup (the kernels need {})",
            adapter.invocations_per_workgroup, needs.invocations_per_workgroup
        ));
    }
    if adapter.workgroup_storage_bytes < needs.workgroup_storage_bytes {
        short.push(format!(
            "{} bytes of workgroup memory (the kernels need {})",
            adapter.workgroup_storage_bytes, needs.workgroup_storage_bytes
        ));
    }
    if adapter.storage_buffers_per_stage < needs.storage_buffers_per_stage {
        short.push(format!(
            "{} storage buffers per stage (the kernels need {})",
            adapter.storage_buffers_per_stage, needs.storage_buffers_per_stage
        ));
    }
    short
}

/// What each operation runs on `adapter` for heads of `head_dim`, as (operation, kernel) lines.
pub fn describe_kernels(adapter: &AdapterLimits, head_dim: usize) -> Vec<(&'static str, String)> {
    if !shortfalls(adapter).is_empty() {
        let generic = "Burn's tensor operations: the adapter offers less than the WGSL kernels need".to_string();
        return vec![("every op", generic), ("packed base", "none: it needs the WGSL kernels (--base-quant none)".to_string())];
    }
    let adapter_shape = if adapter.software { KernelShape::Software } else { KernelShape::Hardware };
    let attention = if !wgsl::supports_head_dim(head_dim) {
        format!("Burn's tensor operations (head dimension {head_dim}: the kernels take multiples of 4 up to 256)")
    } else {
        match wgsl::attention_shape(head_dim, adapter_shape) {
            KernelShape::Software => {
                format!("software shape: {} query rows per workgroup, four per invocation, keys read from the buffers", wgsl::BLOCK)
            }
            KernelShape::Hardware => format!(
                "hardware shape (FlashAttention-2): {} rows per workgroup, one per invocation, keys staged {} at a time in workgroup memory",
                wgsl::BLOCK,
                wgsl::forward_tile(head_dim)
            ),
        }
    };
    let matmul = match adapter_shape {
        KernelShape::Software => format!("the WGSL tiled matmul ({MATMUL_BLOCK} invocations per workgroup)"),
        KernelShape::Hardware => "CubeCL's matmul".to_string(),
    };
    let f16 = if adapter.shader_f16 {
        "f16 weights multiplied in f32 by the WGSL matmul (--precision f16)".to_string()
    } else {
        "none: the adapter has no shader-f16, so training computes in f32".to_string()
    };
    vec![
        ("attention", attention),
        ("matmuls", matmul),
        ("f16 matmuls", f16),
        ("packed base", format!("the WGSL int8/int4 matmuls ({MATMUL_BLOCK} invocations per workgroup)")),
        ("RMSNorm", format!("WGSL, one workgroup of {NORM_BLOCK} per row")),
        ("the rest", format!("loss, SwiGLU, RoPE, dropout and AdamW in WGSL, {ROW_BLOCK} invocations per workgroup")),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lavapipe() -> AdapterLimits {
        AdapterLimits {
            software: true,
            invocations_per_workgroup: 1024,
            workgroup_storage_bytes: 65536,
            storage_buffers_per_stage: 8,
            storage_binding_bytes: 1 << 31,
            buffer_bytes: 1 << 31,
            shader_f16: true,
            subgroups: true,
        }
    }

    #[test]
    fn each_adapter_gets_the_shape_and_the_shortfalls_it_has() {
        let software = describe_kernels(&lavapipe(), 64);
        assert!(software[0].1.starts_with("software shape"), "{software:?}");
        // Gemma's 256-wide heads take the hardware shape even on a software adapter.
        assert!(describe_kernels(&lavapipe(), 256)[0].1.starts_with("hardware shape (FlashAttention-2): 64 rows"));
        assert!(describe_kernels(&lavapipe(), 6)[0].1.starts_with("Burn's tensor operations"));
        let gpu = AdapterLimits { software: false, shader_f16: false, ..lavapipe() };
        let lines = describe_kernels(&gpu, 128);
        assert!(lines[0].1.contains("keys staged 15 at a time"), "{lines:?}");
        assert_eq!(lines[1].1, "CubeCL's matmul");
        assert!(lines[2].1.starts_with("none: the adapter has no shader-f16"));

        assert!(shortfalls(&lavapipe()).is_empty());
        // wgpu's downlevel limits, as on older GPUs: every operation takes Burn's.
        let downlevel =
            AdapterLimits { invocations_per_workgroup: 256, workgroup_storage_bytes: 16352, storage_buffers_per_stage: 4, ..gpu };
        assert_eq!(
            shortfalls(&downlevel),
            ["16352 bytes of workgroup memory (the kernels need 16384)", "4 storage buffers per stage (the kernels need 8)"]
        );
        let lines = describe_kernels(&downlevel, 64);
        assert_eq!(lines[0], ("every op", "Burn's tensor operations: the adapter offers less than the WGSL kernels need".to_string()));
    }
}
