//! Where a step's device time goes, by op family, from CubeCL's own profiler: with it on, CubeCL
//! times every kernel it launches and logs one `| <duration> | <kernel name>` line per launch.
//! Timing each launch waits for it, so a profiled step runs slower than an unprofiled one; the
//! shares are what the breakdown is for.

use std::path::{Path, PathBuf};
use std::time::Duration;

use burn::cubecl::config::profiling::ProfilingLogLevel;
use burn::cubecl::config::{CubeClRuntimeConfig, RuntimeConfig};
use serde::Serialize;

use crate::error::{Error, Result};

/// Device time of one op family, per step.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct FamilyTime {
    pub family: &'static str,
    pub ms: f64,
    pub launches: usize,
}

/// CubeCL's profiling log of this process.
pub struct KernelLog {
    path: PathBuf,
}

impl KernelLog {
    /// Turns CubeCL's profiler on, logging to a new file. CubeCL reads its configuration once, when
    /// the first device opens, so this must come before that.
    pub fn enable() -> Result<Self> {
        let path = std::env::temp_dir().join(format!("wgtune-kernel-profile-{}.log", std::process::id()));
        let mut config = CubeClRuntimeConfig::default();
        config.profiling.logger.level = ProfilingLogLevel::Basic;
        config.profiling.logger.file = Some(path.clone());
        config.profiling.logger.append = false;
        if !CubeClRuntimeConfig::try_set(config) {
            return Err(Error::setting(
                "profile-kernels",
                "a device was opened before kernel profiling was asked for; profile in a process of its own (`wgtune bench`)",
            ));
        }
        Ok(Self { path })
    }

    /// The log's length once CubeCL's logger (a background task) has stopped writing.
    pub fn settled_len(&self) -> u64 {
        let len = || std::fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0);
        let mut last = len();
        loop {
            std::thread::sleep(Duration::from_millis(200));
            let now = len();
            if now == last {
                return now;
            }
            last = now;
        }
    }

    /// Device time per step of the launches logged after byte `from`, by family, largest first.
    pub fn families_since(&self, from: u64, steps: usize) -> Result<Vec<FamilyTime>> {
        self.settled_len();
        let bytes = std::fs::read(&self.path).map_err(|e| Error::io(&self.path, e))?;
        let text = String::from_utf8_lossy(bytes.get(from as usize..).unwrap_or_default());
        Ok(sum_by_family(&text, steps))
    }

    /// The raw log, one line per launch with the kernel's full name, kept for a closer look.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Sums the `| <duration> | <kernel>` lines of a CubeCL profiling log by op family, per step.
fn sum_by_family(log: &str, steps: usize) -> Vec<FamilyTime> {
    let mut families: Vec<FamilyTime> = Vec::new();
    for (duration, kernel) in log.lines().filter_map(parse_line) {
        let family = family_of(kernel);
        match families.iter_mut().find(|f| f.family == family) {
            Some(f) => {
                f.ms += duration.as_secs_f64() * 1000.0;
                f.launches += 1;
            }
            None => families.push(FamilyTime { family, ms: duration.as_secs_f64() * 1000.0, launches: 1 }),
        }
    }
    let steps = steps.max(1);
    for f in &mut families {
        f.ms /= steps as f64;
        f.launches /= steps;
    }
    families.sort_by(|a, b| b.ms.total_cmp(&a.ms));
    families
}

/// `| 3.555s     | MatmulEntry | ...` → (3.555 s, "MatmulEntry | ..."); summary tables and other
/// lines are not timings.
fn parse_line(line: &str) -> Option<(Duration, &str)> {
    let rest = line.strip_prefix("| ")?;
    let (duration, kernel) = rest.split_once(" | ")?;
    Some((parse_duration(duration.trim())?, kernel.trim()))
}

/// Rust's `Debug` form of a `Duration`: `1.5s`, `12.3ms`, `45.6µs`, `789ns`.
fn parse_duration(text: &str) -> Option<Duration> {
    let (number, scale) = [("ns", 1e-9), ("µs", 1e-6), ("ms", 1e-3), ("s", 1.0)]
        .into_iter()
        .find_map(|(unit, scale)| text.strip_suffix(unit).map(|n| (n, scale)))?;
    let seconds = number.parse::<f64>().ok()? * scale;
    Some(Duration::from_secs_f64(seconds))
}

/// The op family of a kernel, from the name CubeCL gives it (its Rust type).
fn family_of(kernel: &str) -> &'static str {
    let first = kernel.split(" | ").next().unwrap_or(kernel);
    let has = |part: &str| first.contains(part);
    // wgtune's own matmul and attention are WGSL source kernels named `WgslMatmul` and
    // `WgslAttention` (src/kernels/launch.rs).
    if has("Matmul") || kernel.contains("WgslMatmul") {
        "matmul"
    } else if kernel.contains("WgslAttention") {
        "attention"
    } else if has("SourceKernel") {
        "wgtune WGSL kernels"
    } else if has("Binop") || has("Unary") || has("Cast") || has("Mask") || has("Clamp") {
        "element-wise"
    } else if has("Reduce") || has("Sum") || has("Argm") {
        "reduction"
    } else if has("Copy") || has("Slice") || has("Select") || has("Gather") || has("Scatter") || has("Contiguous") {
        "copy, slice, gather"
    } else if has("Full") || has("Prng") {
        "fill and random"
    } else {
        "other"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_cubecl_log_lines_by_family_per_step() {
        let log = "\
| 3.5s       | MatmulEntry | TensorArgs | SimpleMatmulFamily_12ea2be4
| 500ms      | MatmulEntry | TensorArgs | SimpleMatmulFamily_8929f3c4
| 200.5ms    | SourceKernel | Wgsl_2da499f7
| 100ms      | SourceKernel | WgslMatmul_5d0c11aa
| 300ms      | SourceKernel | WgslAttention_1a2b3c4d
| 100ms      | SourceKernel | WgslAttention_5e6f7a8b
| 250µs      | KernelBinop | AddOp_01eb861c
| 750µs      | KernelScalarBinop | MulOp_7b86323a
| 1ms        | SharedSumKernel_2960c81f
| 2ms        | CopyKernel_52346b11
| 4ms        | SliceAssignKernel_990bc2be
| 10ns       | FullKernel_c34afe96
| not measured | KernelBinop | DivOp_eea782df
| Name | Duration | Num Computed | Ratio |
| Total | 4.2s | 9 | 100 % |
";
        let families = sum_by_family(log, 2);
        let get = |name: &str| families.iter().find(|f| f.family == name).cloned();
        assert_eq!(families[0].family, "matmul");
        assert!((get("matmul").map(|f| f.ms).unwrap_or(0.0) - 2050.0).abs() < 1e-6, "the WGSL matmul counts as matmul");
        assert_eq!(get("matmul").map(|f| f.launches), Some(1));
        assert_eq!(get("attention").map(|f| (f.ms, f.launches)), Some((200.0, 1)), "the attention kernels apart");
        assert!((get("wgtune WGSL kernels").map(|f| f.ms).unwrap_or(0.0) - 100.25).abs() < 1e-6);
        assert!((get("element-wise").map(|f| f.ms).unwrap_or(0.0) - 0.5).abs() < 1e-6);
        assert!((get("reduction").map(|f| f.ms).unwrap_or(0.0) - 0.5).abs() < 1e-6);
        assert!((get("copy, slice, gather").map(|f| f.ms).unwrap_or(0.0) - 3.0).abs() < 1e-6);
        assert!(get("fill and random").is_some());
        assert_eq!(families.len(), 7, "{families:?}");
    }
}
