//! Opening wgpu with less than the adapter offers: WebGPU's default limits (what a browser gives a
//! page that asks for nothing more), wgpu's downlevel ones, or a storage binding lowered further.
//!
//! Burn asks for everything the adapter has, and lavapipe has a lot; a run that fits there can
//! still fail on a laptop GPU or in a browser. `WGTUNE_WGPU_LIMITS` opens the device the way those
//! would, so the tests (and a curious user) see the same refusals and splits on this machine.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use burn::tensor::wgpu::{WgpuSetup, wgpu};

/// The environment variable that picks the limits: `adapter` (the default), `webgpu` or
/// `downlevel`, optionally followed by `,storage-binding=SIZE` (bytes, or with KiB/MiB/GiB).
pub const LIMITS_VARIABLE: &str = "WGTUNE_WGPU_LIMITS";

/// The limits a wgpu device is opened with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LimitsRequest {
    pub base: BaseLimits,
    /// The largest storage binding, when lower than `base`'s.
    pub storage_binding: Option<u64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BaseLimits {
    /// Everything the adapter offers (what Burn asks for).
    Adapter,
    /// `wgpu::Limits::default()`: WebGPU's defaults, which every WebGPU implementation offers.
    WebGpu,
    /// `wgpu::Limits::downlevel_defaults()`: 4 storage buffers per stage, as on older GPUs.
    Downlevel,
}

impl LimitsRequest {
    /// The request in the environment; `Adapter` when the variable is unset.
    pub fn from_env() -> Result<Self, String> {
        match std::env::var(LIMITS_VARIABLE) {
            Ok(text) => text.parse().map_err(|e| format!("{LIMITS_VARIABLE}={text}: {e}")),
            Err(_) => Ok(Self { base: BaseLimits::Adapter, storage_binding: None }),
        }
    }

    /// Burn's own request (everything the adapter has) is the only one it can make by itself.
    pub fn is_adapter(&self) -> bool {
        self.label().is_none()
    }

    /// What these limits are called in the device's description; `None` for the adapter's own.
    pub fn label(&self) -> Option<&'static str> {
        match self.base {
            BaseLimits::Adapter if self.storage_binding.is_none() => None,
            BaseLimits::Adapter => Some("lowered limits"),
            BaseLimits::WebGpu => Some("WebGPU's default limits"),
            BaseLimits::Downlevel => Some("downlevel limits"),
        }
    }

    /// The limits to ask `adapter` for: never more than it has.
    fn limits(&self, adapter: &wgpu::Adapter) -> wgpu::Limits {
        let offered = adapter.limits();
        let mut limits = match self.base {
            BaseLimits::Adapter => offered.clone(),
            BaseLimits::WebGpu => wgpu::Limits::default().or_worse_values_from(&offered),
            BaseLimits::Downlevel => wgpu::Limits::downlevel_defaults().or_worse_values_from(&offered),
        };
        if let Some(bytes) = self.storage_binding {
            limits.max_storage_buffer_binding_size = limits.max_storage_buffer_binding_size.min(bytes);
        }
        limits
    }

    /// A device on the default adapter with these limits, as a setup Burn registers.
    pub fn open(&self) -> Result<WgpuSetup, String> {
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
            backends: wgpu::Backends::from_env().unwrap_or(wgpu::Backends::PRIMARY),
            ..wgpu::InstanceDescriptor::new_without_display_handle()
        });
        let options = wgpu::RequestAdapterOptions { power_preference: wgpu::PowerPreference::HighPerformance, ..Default::default() };
        let adapter = block_on(instance.request_adapter(&options)).map_err(|e| e.to_string())?;
        let descriptor = wgpu::DeviceDescriptor {
            label: Some("wgtune"),
            // What Burn's WGSL path asks for: every feature but mappable primary buffers.
            required_features: adapter.features().difference(wgpu::Features::MAPPABLE_PRIMARY_BUFFERS),
            required_limits: self.limits(&adapter),
            memory_hints: wgpu::MemoryHints::MemoryUsage,
            trace: wgpu::Trace::Off,
            // SAFETY: Burn's SPIR-V compiler on Vulkan hands wgpu passthrough shaders, which are
            // experimental; Burn enables them on the devices it opens itself too.
            experimental_features: unsafe { wgpu::ExperimentalFeatures::enabled() },
        };
        let (device, queue) = block_on(adapter.request_device(&descriptor)).map_err(|e| e.to_string())?;
        let backend = adapter.get_info().backend;
        Ok(WgpuSetup { instance, adapter, device, queue, backend })
    }
}

impl std::str::FromStr for LimitsRequest {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let mut parts = text.split(',').map(str::trim);
        let base = match parts.next().unwrap_or_default() {
            "adapter" => BaseLimits::Adapter,
            "webgpu" => BaseLimits::WebGpu,
            "downlevel" => BaseLimits::Downlevel,
            other => return Err(format!("`{other}`: expected adapter, webgpu or downlevel")),
        };
        let mut storage_binding = None;
        for part in parts {
            let Some(size) = part.strip_prefix("storage-binding=") else {
                return Err(format!("`{part}`: expected storage-binding=SIZE"));
            };
            storage_binding = Some(parse_size(size).ok_or_else(|| format!("`{size}`: expected a size such as 65536, 64KiB or 128MiB"))?);
        }
        Ok(Self { base, storage_binding })
    }
}

/// `65536`, `64KiB`, `128MiB` or `2GiB` in bytes.
fn parse_size(text: &str) -> Option<u64> {
    let (digits, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len()));
    let scale = match unit {
        "" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        _ => return None,
    };
    digits.parse::<u64>().ok()?.checked_mul(scale).filter(|&bytes| bytes > 0)
}

/// Waits for a future on this thread. wgpu's native futures are ready at once or soon after;
/// this keeps a whole async runtime out of the dependencies for two calls.
fn block_on<F: Future>(future: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut context = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        match future.as_mut().poll(&mut context) {
            Poll::Ready(output) => return output,
            Poll::Pending => std::thread::park(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_read_from_their_text() {
        assert!("adapter".parse::<LimitsRequest>().unwrap().is_adapter());
        assert_eq!("webgpu".parse(), Ok(LimitsRequest { base: BaseLimits::WebGpu, storage_binding: None }));
        assert_eq!(
            "downlevel, storage-binding=64KiB".parse(),
            Ok(LimitsRequest { base: BaseLimits::Downlevel, storage_binding: Some(65536) })
        );
        assert_eq!("webgpu,storage-binding=3".parse::<LimitsRequest>().unwrap().storage_binding, Some(3));
        assert_eq!("webgpu,storage-binding=2GiB".parse::<LimitsRequest>().unwrap().storage_binding, Some(2 << 30));
        assert!("webgl".parse::<LimitsRequest>().unwrap_err().contains("expected adapter, webgpu or downlevel"));
        assert!("webgpu,storage-binding=2GB".parse::<LimitsRequest>().unwrap_err().contains("`2GB`: expected a size"));
        assert!("webgpu,storage-binding=0".parse::<LimitsRequest>().is_err());
        assert!("webgpu,bindings=4".parse::<LimitsRequest>().unwrap_err().contains("expected storage-binding=SIZE"));
    }
}
