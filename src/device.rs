//! Choosing where tensors live: a GPU through wgpu (Vulkan, Metal, DX12, GL), or the CPU.

mod limits_request;

use std::sync::OnceLock;

use burn::tensor::Device;

pub use limits_request::{BaseLimits, LIMITS_VARIABLE, LimitsRequest};

use crate::error::{Error, Result};
use crate::model::Precision;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceChoice {
    /// A hardware GPU through wgpu when there is one, the CPU otherwise (a software Vulkan
    /// rasterizer such as lavapipe is slower than the CPU backend).
    #[default]
    Auto,
    /// The best adapter wgpu finds, software ones included.
    Wgpu,
    /// Burn's pure-Rust CPU backend, for machines without a usable GPU.
    Cpu,
}

impl std::str::FromStr for DeviceChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "wgpu" | "gpu" | "vulkan" | "metal" | "dx12" => Ok(Self::Wgpu),
            "cpu" => Ok(Self::Cpu),
            other => Err(format!("unknown device `{other}` (auto, wgpu, cpu)")),
        }
    }
}

impl std::fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Auto => "auto",
            Self::Wgpu => "wgpu",
            Self::Cpu => "cpu",
        })
    }
}

/// An opened device and what we know about it.
#[derive(Clone, Debug)]
pub struct ComputeDevice {
    pub device: Device,
    pub choice: DeviceChoice,
    /// Adapter name and graphics API, e.g. `llvmpipe (LLVM 15.0.6, 256 bits), Vulkan`.
    pub description: String,
    /// The largest single buffer the device allows; big tensors are computed in chunks under it.
    pub max_buffer_bytes: u64,
    /// Whether shaders can compute in f16 (wgpu's `shader-f16`; always on the CPU).
    pub supports_f16: bool,
    /// The most memory a run can have: the machine's RAM on the CPU and on software or
    /// integrated GPUs, an upper bound on a discrete GPU (wgpu does not report video memory).
    /// `None` where the platform does not say.
    pub memory_limit: Option<u64>,
    /// The wgpu adapter's limits and features that the kernels depend on; `None` on the CPU.
    pub adapter: Option<AdapterLimits>,
}

/// What the WGSL kernels depend on in a wgpu adapter (see `kernels::describe_kernels`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdapterLimits {
    /// A software adapter (lavapipe, SwiftShader), which runs a workgroup's invocations as loops
    /// on CPU threads: the kernels take their software shape there.
    pub software: bool,
    pub invocations_per_workgroup: u32,
    pub workgroup_storage_bytes: u32,
    pub storage_buffers_per_stage: u32,
    pub storage_binding_bytes: u64,
    pub buffer_bytes: u64,
    pub shader_f16: bool,
    pub subgroups: bool,
}

impl AdapterLimits {
    /// The most bytes one tensor can take there: one buffer, bound whole to a shader.
    pub fn tensor_bytes(&self) -> u64 {
        self.storage_binding_bytes.min(self.buffer_bytes)
    }
}

impl ComputeDevice {
    pub fn open(choice: DeviceChoice) -> Result<Self> {
        match choice {
            DeviceChoice::Cpu => Ok(Self::cpu()),
            DeviceChoice::Wgpu => wgpu_device().clone().map(|(d, _)| d).map_err(Error::Device),
            DeviceChoice::Auto => Ok(match wgpu_device() {
                Ok((device, true)) => device.clone(),
                _ => Self::cpu(),
            }),
        }
    }

    fn cpu() -> Self {
        Self {
            device: Device::flex(),
            choice: DeviceChoice::Cpu,
            description: format!("CPU ({} threads)", std::thread::available_parallelism().map_or(1, |n| n.get())),
            max_buffer_bytes: 1 << 40,
            supports_f16: true,
            memory_limit: system_memory(),
            adapter: None,
        }
    }

    /// Whether the device can compute in `precision`.
    pub fn check_precision(&self, precision: Precision) -> Result<()> {
        if precision == Precision::F16 && !self.supports_f16 {
            return Err(Error::setting("precision", format!("{} cannot compute in f16 (no shader-f16); use f32", self.description)));
        }
        Ok(())
    }

    /// The same device with gradients enabled, for training.
    pub fn autodiff(&self) -> Device {
        self.device.clone().autodiff()
    }
}

/// Whether the wgpu adapter is a hardware GPU (not software Vulkan such as lavapipe); false when
/// wgpu cannot open. `kernels::kernel_shape` picks kernel variants by it.
pub(crate) fn wgpu_adapter_is_hardware() -> bool {
    matches!(wgpu_device(), Ok((_, true)))
}

/// The wgpu adapter's limits as the device was opened with them, when wgpu is open.
pub(crate) fn wgpu_adapter_limits() -> Option<&'static AdapterLimits> {
    wgpu_device().as_ref().ok().and_then(|(device, _)| device.adapter.as_ref())
}

/// The most bytes one storage binding of the wgpu device holds, when wgpu is open: a larger
/// tensor cannot be bound, so the loader keeps vocabulary tables past it in blocks.
pub(crate) fn wgpu_storage_binding_limit() -> Option<u64> {
    wgpu_device().as_ref().ok().map(|(device, _)| device.max_buffer_bytes)
}

/// wgpu can be initialised once per process; every caller shares that device. The flag says
/// whether the adapter is hardware.
fn wgpu_device() -> &'static Result<(ComputeDevice, bool), String> {
    static WGPU: OnceLock<Result<(ComputeDevice, bool), String>> = OnceLock::new();
    WGPU.get_or_init(|| {
        let request = LimitsRequest::from_env()?;
        let opened = if request.is_adapter() {
            Device::wgpu_options().init_with_setup().map_err(|e| e.to_string())
        } else {
            request.open().and_then(|setup| {
                let device = Device::wgpu_options().setup(setup.clone()).init().map_err(|e| e.to_string())?;
                Ok((device, setup))
            })
        };
        let (device, setup) = opened.map_err(|e| {
            format!("no usable GPU through wgpu ({e}); install a Vulkan driver (on Linux without a GPU: mesa-vulkan-drivers) or use --device cpu")
        })?;
        let info = setup.adapter.get_info();
        let limits = setup.device.limits();
        let hardware = info.device_type != burn::tensor::wgpu::wgpu::DeviceType::Cpu;
        let features = setup.adapter.features();
        let adapter = AdapterLimits {
            software: !hardware,
            invocations_per_workgroup: limits.max_compute_invocations_per_workgroup,
            workgroup_storage_bytes: limits.max_compute_workgroup_storage_size,
            storage_buffers_per_stage: limits.max_storage_buffers_per_shader_stage,
            storage_binding_bytes: limits.max_storage_buffer_binding_size,
            buffer_bytes: limits.max_buffer_size,
            shader_f16: features.contains(burn::tensor::wgpu::wgpu::Features::SHADER_F16),
            subgroups: features.contains(burn::tensor::wgpu::wgpu::Features::SUBGROUP),
        };
        let device = ComputeDevice {
            device,
            choice: DeviceChoice::Wgpu,
            description: match request.label() {
                Some(limits) => format!("{}, {:?}, {limits}", info.name, info.backend),
                None => format!("{}, {:?}", info.name, info.backend),
            },
            max_buffer_bytes: adapter.tensor_bytes(),
            supports_f16: adapter.shader_f16,
            memory_limit: system_memory(),
            adapter: Some(adapter),
        };
        Ok((device, hardware))
    })
}

/// The machine's RAM, from `/proc/meminfo` (Linux); `None` elsewhere.
fn system_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
