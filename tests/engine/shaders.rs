//! Every WGSL kernel variant the launcher can produce (`kernels::every_kernel_variant`), through the
//! compilers a user's GPU runs it with: naga's validator (what wgpu checks first) and its SPIR-V
//! (Vulkan; checked by `spirv-val`), MSL (Metal) and HLSL (DX12) back ends; and within WebGPU's
//! default limits, which a browser and many laptop GPUs keep to. Chrome's own compiler (Tint) is
//! `browser_shaders.rs`.

use std::path::Path;
use std::process::Command;

use wgtune::kernels::{KERNEL_NEEDS, KernelVariant, every_kernel_variant};

/// WebGPU's default limits (`GPUSupportedLimits`, which `wgpu::Limits::default()` mirrors): what
/// a device has unless it asks its adapter for more. The kernels claim to need no more
/// (`KERNEL_NEEDS`, which `wgtune inspect` compares an adapter with); each variant is held to it.
const MAX_INVOCATIONS: usize = KERNEL_NEEDS.invocations_per_workgroup as usize;
const MAX_WORKGROUP_BYTES: u32 = KERNEL_NEEDS.workgroup_storage_bytes;
const MAX_STORAGE_BUFFERS: usize = KERNEL_NEEDS.storage_buffers_per_stage as usize;

// `KERNEL_NEEDS` is within WebGPU's defaults (256 invocations, 16 KiB, 8 storage buffers), or
// this file does not build.
const _: () = assert!(MAX_INVOCATIONS <= 256 && MAX_WORKGROUP_BYTES <= 16384 && MAX_STORAGE_BUFFERS <= 8);

/// Whether missing external tools (`spirv-val`, Chromium) fail the shader tests instead of
/// skipping those checks: CI sets it, where `.ci/run` installs them.
pub fn tools_required() -> bool {
    std::env::var_os("WGTUNE_REQUIRE_SHADER_TOOLS").is_some_and(|v| v == "1")
}

/// What naga made of one variant.
pub struct Compiled {
    pub spirv: Vec<u32>,
    pub workgroup_bytes: u32,
    pub storage_buffers: usize,
}

/// Parses and validates `variant` as wgpu does, writes it as SPIR-V, MSL and HLSL, and measures
/// the limits it needs; every error names the stage and carries naga's report.
pub fn compile_with_naga(variant: &KernelVariant) -> Result<Compiled, String> {
    let source = &variant.wgsl;
    let module = naga::front::wgsl::parse_str(source).map_err(|e| format!("WGSL parse: {}", e.emit_to_string(source)))?;
    // f16 packing and unpacking in f32 code (`unpack2x16float`) is core WebGPU: wgpu grants it
    // to every adapter that is not a downlevel one.
    let mut capabilities = naga::valid::Capabilities::SHADER_FLOAT16_IN_FLOAT32;
    if variant.needs_f16 {
        capabilities |= naga::valid::Capabilities::SHADER_FLOAT16;
    }
    let info = naga::valid::Validator::new(naga::valid::ValidationFlags::all(), capabilities)
        .validate(&module)
        .map_err(|e| format!("validation: {}", e.emit_to_string(source)))?;

    let spirv =
        naga::back::spv::write_vec(&module, &info, &naga::back::spv::Options::default(), None).map_err(|e| format!("SPIR-V: {e}"))?;
    let msl_options = naga::back::msl::Options { lang_version: (2, 4), ..Default::default() };
    naga::back::msl::write_string(&module, &info, &msl_options, &naga::back::msl::PipelineOptions::default())
        .map_err(|e| format!("MSL: {e}"))?;
    // DXC's shader model 6.2, the first with 16-bit floats (wgpu's DX12 back end compiles with DXC).
    let hlsl_options = naga::back::hlsl::Options { shader_model: naga::back::hlsl::ShaderModel::V6_2, ..Default::default() };
    let mut hlsl = String::new();
    naga::back::hlsl::Writer::new(&mut hlsl, &hlsl_options, &naga::back::hlsl::PipelineOptions::default())
        .write(&module, &info, None)
        .map_err(|e| format!("HLSL: {e}"))?;

    let mut layouter = naga::proc::Layouter::default();
    layouter.update(module.to_ctx()).map_err(|e| format!("layout: {e}"))?;
    let of_space = |space: naga::AddressSpace| module.global_variables.iter().filter(move |(_, g)| g.space == space);
    // Each variable in whole 16-byte slots, as Chrome's compiler counts them (the strictest).
    let workgroup_bytes = of_space(naga::AddressSpace::WorkGroup).map(|(_, g)| layouter[g.ty].size.next_multiple_of(16)).sum();
    let storage_buffers = module.global_variables.iter().filter(|(_, g)| matches!(g.space, naga::AddressSpace::Storage { .. })).count();
    Ok(Compiled { spirv, workgroup_bytes, storage_buffers })
}

/// Runs `spirv-val` (Vulkan 1.1 rules, as wgpu's Vulkan back end targets) on `words`; `None` where
/// it is not installed.
fn spirv_val(words: &[u32], dir: &Path, name: &str) -> Option<Result<(), String>> {
    let path = dir.join(format!("{name}.spv"));
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
    std::fs::write(&path, bytes).unwrap();
    let out = Command::new("spirv-val").args(["--target-env", "vulkan1.1"]).arg(&path).output().ok()?;
    Some(if out.status.success() { Ok(()) } else { Err(String::from_utf8_lossy(&out.stderr).into_owned()) })
}

#[test]
fn every_kernel_variant_compiles_to_spirv_msl_and_hlsl_within_webgpus_default_limits() {
    let variants = every_kernel_variant();
    assert!(variants.len() > 200, "{} variants", variants.len());
    let dir = tempfile::tempdir().unwrap();
    let (mut failures, mut validated, mut spirv_missing) = (Vec::new(), 0, false);
    for (i, variant) in variants.iter().enumerate() {
        let compiled = match compile_with_naga(variant) {
            Ok(compiled) => compiled,
            Err(e) => {
                failures.push(format!("{}: {e}", variant.label));
                continue;
            }
        };
        if variant.invocations > MAX_INVOCATIONS {
            failures.push(format!("{}: {} invocations per workgroup (WebGPU: {MAX_INVOCATIONS})", variant.label, variant.invocations));
        }
        if compiled.workgroup_bytes > MAX_WORKGROUP_BYTES {
            failures
                .push(format!("{}: {} bytes of workgroup memory (WebGPU: {MAX_WORKGROUP_BYTES})", variant.label, compiled.workgroup_bytes));
        }
        if compiled.storage_buffers > MAX_STORAGE_BUFFERS {
            failures.push(format!("{}: {} storage buffers (WebGPU: {MAX_STORAGE_BUFFERS})", variant.label, compiled.storage_buffers));
        }
        match spirv_val(&compiled.spirv, dir.path(), &format!("variant-{i}")) {
            Some(Ok(())) => validated += 1,
            Some(Err(e)) => failures.push(format!("{}: spirv-val: {e}", variant.label)),
            None => spirv_missing = true,
        }
    }
    assert!(failures.is_empty(), "{} of {} variants fail:\n{}", failures.len(), variants.len(), failures.join("\n"));
    if spirv_missing {
        assert!(!tools_required(), "spirv-val is not installed (apt-get install spirv-tools)");
        eprintln!("spirv-val is not installed (apt-get install spirv-tools): the SPIR-V was written but not validated");
    } else {
        assert_eq!(validated, variants.len());
    }
}

/// The checks above can fail: a kernel with a planted type error is refused by naga, naming the
/// line, and SPIR-V that breaks a rule is refused by `spirv-val`.
#[test]
fn a_broken_kernel_is_refused() {
    let good = every_kernel_variant().into_iter().find(|v| v.label == "swiglu_forward").unwrap();
    assert!(compile_with_naga(&good).is_ok());
    // `let` of a float bound to an integer: a type error in the body.
    let broken = KernelVariant { wgsl: good.wgsl.replacen("let ", "let planted_error: u32 = 1.5; let ", 1), ..good.clone() };
    let err = compile_with_naga(&broken).err().expect("naga refuses the planted error");
    assert!(err.starts_with("validation:") || err.starts_with("WGSL parse:"), "{err}");
    assert!(err.contains("planted_error") || err.contains("1.5"), "{err}");

    let compiled = compile_with_naga(&good).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut words = compiled.spirv.clone();
    words[0] = 0x0123_4567; // not SPIR-V's magic number
    match spirv_val(&words, dir.path(), "broken") {
        Some(result) => assert!(result.is_err(), "spirv-val took broken SPIR-V"),
        None => assert!(!tools_required(), "spirv-val is not installed (apt-get install spirv-tools)"),
    }
}
