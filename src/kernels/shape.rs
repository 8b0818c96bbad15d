//! Which shape of the WGSL kernels runs: the one place that picks a kernel variant by adapter.
//!
//! A software adapter (lavapipe) runs workgroup invocations as loops on CPU threads, where a load
//! from workgroup memory costs as much as one from a buffer; its attention kernels give each
//! invocation four rows and read keys straight from the buffers, and its matmul is our own. A
//! hardware GPU wants the opposite: wide workgroups, one row per invocation, tiles staged in
//! workgroup memory (FlashAttention-2's shape), and CubeCL's tiled matmul.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The two shapes of the attention and matmul kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelShape {
    /// For software Vulkan: four rows per invocation, no staging, the WGSL matmul.
    Software,
    /// For hardware GPUs: one row per invocation, tiles in workgroup memory, CubeCL's matmul.
    Hardware,
}

impl std::str::FromStr for KernelShape {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "software" => Ok(Self::Software),
            "hardware" => Ok(Self::Hardware),
            other => Err(format!("`{other}`: expected software or hardware")),
        }
    }
}

impl std::fmt::Display for KernelShape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Software => "software",
            Self::Hardware => "hardware",
        })
    }
}

thread_local! {
    static FORCED: Cell<Option<KernelShape>> = const { Cell::new(None) };
}

/// Launches of hardware-shaped attention kernels in this process, so that a test can tell that
/// forcing the shape reached them.
static HARDWARE_LAUNCHES: AtomicUsize = AtomicUsize::new(0);

/// The shape of the kernels launched from this thread: the one forced on it, else the wgpu
/// adapter's (software for a CPU adapter, hardware otherwise).
pub fn kernel_shape() -> KernelShape {
    FORCED
        .with(Cell::get)
        .unwrap_or_else(|| if crate::device::wgpu_adapter_is_hardware() { KernelShape::Hardware } else { KernelShape::Software })
}

/// Runs the kernels launched from this thread (a training step's forward and backward passes
/// alike) in `shape` until the guard drops, whatever the adapter: the tests run the hardware shape
/// on lavapipe this way, and `wgtune bench --kernel-shape` profiles either on any device.
pub fn force_kernel_shape(shape: KernelShape) -> ForcedShape {
    ForcedShape { previous: FORCED.with(|f| f.replace(Some(shape))) }
}

/// Restores the shape that was in force before [`force_kernel_shape`] when dropped.
#[must_use = "the shape is forced only while the guard lives"]
pub struct ForcedShape {
    previous: Option<KernelShape>,
}

impl Drop for ForcedShape {
    fn drop(&mut self) {
        FORCED.with(|f| f.set(self.previous));
    }
}

/// How many hardware-shaped attention kernels this process has launched.
pub fn hardware_launches() -> usize {
    HARDWARE_LAUNCHES.load(Ordering::Relaxed)
}

pub(super) fn count_hardware_launch() {
    HARDWARE_LAUNCHES.fetch_add(1, Ordering::Relaxed);
}
