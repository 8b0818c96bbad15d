//! The WGSL kernels of `shaders/`: each kernel's source, the template values a launch fills in,
//! its workgroup size, and the list of every variant the launcher can produce, which the shader
//! tests put through every compiler a user's machine may run them with (naga's WGSL, SPIR-V, MSL
//! and HLSL, and Chrome's Tint).

use burn::backend::wgpu::{KernelSource, SourceTemplate};
use burn::cubecl::prelude::KernelId;

use super::shape::KernelShape;

/// A WGSL source with its template values filled in. Kernels differ by name and values, which
/// together identify the compiled pipeline.
pub(super) struct Wgsl {
    pub name: &'static str,
    source: &'static str,
    values: Vec<(&'static str, String)>,
    /// Invocations per workgroup (the launch's `CubeDim`).
    pub invocations: usize,
}

impl Wgsl {
    /// The WGSL text the GPU's compiler receives.
    pub fn text(&self) -> String {
        self.source().complete()
    }
}

impl KernelSource for Wgsl {
    fn source(&self) -> SourceTemplate {
        self.values.iter().fold(SourceTemplate::new(self.source), |t, (k, v)| t.register(*k, v.clone()))
    }

    fn id(&self) -> KernelId {
        KernelId::new::<Self>().info((self.name, self.values.clone()))
    }

    fn lang(&self) -> &'static str {
        "wgsl"
    }
}

/// A kernel of a family that kernel profiles tell apart: they name a source kernel by the type its
/// id is made from, so each family wraps [`Wgsl`] in a type of its own.
pub(super) struct Family<Name>(pub Wgsl, std::marker::PhantomData<Name>);

/// The matmul kernels, with the matmuls in profiles.
pub(super) struct WgslMatmul;
/// The attention kernels, in either shape.
pub(super) struct WgslAttention;

impl<Name: Send + Sync + 'static> Family<Name> {
    pub fn new(kernel: Wgsl) -> Self {
        Self(kernel, std::marker::PhantomData)
    }
}

impl<Name: Send + Sync + 'static> KernelSource for Family<Name> {
    fn source(&self) -> SourceTemplate {
        self.0.source()
    }

    fn id(&self) -> KernelId {
        KernelId::new::<Name>().info((self.0.name, self.0.values.clone()))
    }

    fn lang(&self) -> &'static str {
        "wgsl"
    }
}

/// The source of a kernel: the named files of `shaders/` (without `.wgsl`) one after the other,
/// the parts it shares with other kernels first.
macro_rules! shader {
    ($($file:literal),+) => {
        concat!($(include_str!(concat!("../../shaders/", $file, ".wgsl"))),+)
    };
}

/// A kernel launched under one name whatever its template values: its name and its source.
#[derive(Clone, Copy)]
pub(super) struct Shader {
    pub name: &'static str,
    pub source: &'static str,
}

// Each attention kernel: what they all share, its pass's bindings (the same in both shapes), and
// for the hardware-shaped kernels over a block of queries, their block setup and tile staging.
const ATTENTION_FORWARD: &str = shader!("attention_common", "attention_bindings_forward", "attention_forward");
const ATTENTION_BACKWARD_QUERY: &str = shader!("attention_common", "attention_bindings_backward_query", "attention_backward_query");
const ATTENTION_BACKWARD_KEY_VALUE: &str =
    shader!("attention_common", "attention_bindings_backward_key_value", "attention_backward_key_value");
const FLASH_ATTENTION_FORWARD: &str =
    shader!("attention_common", "attention_bindings_forward", "flash_attention_queries", "flash_attention_forward");
const FLASH_ATTENTION_BACKWARD_QUERY: &str =
    shader!("attention_common", "attention_bindings_backward_query", "flash_attention_queries", "flash_attention_backward_query");
const FLASH_ATTENTION_BACKWARD_KEY_VALUE: &str =
    shader!("attention_common", "attention_bindings_backward_key_value", "flash_attention_backward_key_value");
pub(super) const CROSS_ENTROPY_ROWS: Shader = Shader { name: "cross_entropy_rows", source: shader!("uniform_info", "cross_entropy_rows") };
pub(super) const CROSS_ENTROPY_GRAD: Shader = Shader { name: "cross_entropy_grad", source: shader!("cross_entropy_grad") };
pub(super) const ADAMW: Shader = Shader { name: "adamw", source: shader!("adamw") };
pub(super) const RMS_NORM_FORWARD: Shader =
    Shader { name: "rms_norm_forward", source: shader!("uniform_info", "workgroup_sum", "rms_norm_forward") };
pub(super) const RMS_NORM_BACKWARD: Shader =
    Shader { name: "rms_norm_backward", source: shader!("uniform_info", "workgroup_sum", "rms_norm_backward") };
pub(super) const ROTARY: Shader = Shader { name: "rotary", source: shader!("rotary") };
pub(super) const SQUARED_NORM: Shader = Shader { name: "squared_norm", source: shader!("uniform_info", "workgroup_sum", "squared_norm") };
pub(super) const DROPOUT: Shader = Shader { name: "dropout", source: shader!("dropout") };
pub(super) const SWIGLU_FORWARD: Shader = Shader { name: "swiglu_forward", source: shader!("swiglu_forward") };
pub(super) const SWIGLU_BACKWARD: Shader = Shader { name: "swiglu_backward", source: shader!("swiglu_backward") };
const MATMUL: &str = shader!("matmul_common", "matmul_tiles", "matmul");
const MATMUL_NT: &str = shader!("matmul_common", "matmul_tiles", "matmul_nt");
// The same two kernels over a packed B: the forward product `x · Wᵀ` and the input gradient `dy · W`.
const PACKED_MATMUL: &str = shader!("packed_common", "matmul_tiles", "matmul_nt");
const PACKED_MATMUL_GRAD: &str = shader!("packed_common", "matmul_tiles", "matmul");

/// The kernels launched one invocation per element or per row, in workgroups of [`ROW_BLOCK`].
const ROW_KERNELS: [Shader; 8] =
    [CROSS_ENTROPY_ROWS, CROSS_ENTROPY_GRAD, SQUARED_NORM, ROTARY, SWIGLU_FORWARD, SWIGLU_BACKWARD, DROPOUT, ADAMW];

/// The RMSNorm kernels, one workgroup of [`NORM_BLOCK`] per row.
const NORM_KERNELS: [Shader; 2] = [RMS_NORM_FORWARD, RMS_NORM_BACKWARD];

/// Invocations per workgroup of the matmul kernels.
pub(super) const MATMUL_BLOCK: usize = 64;

/// Invocations per workgroup of the row-wise and element-wise kernels (a power of two).
pub(super) const ROW_BLOCK: usize = 256;

/// Invocations per workgroup of the RMSNorm kernels, one workgroup per row (a power of two): rows
/// are a few hundred to a few thousand wide.
pub(super) const NORM_BLOCK: usize = 64;

/// Query (or key) rows per attention workgroup, in either shape.
///
/// Software shape, uniform loads: every invocation of a workgroup walks the same keys (or
/// queries) in the same order, reading them straight from the storage buffers and masking what its
/// rows may not see. They do not stage rows in workgroup memory: lavapipe's llvmpipe loads from
/// workgroup memory one invocation at a time, like any storage-buffer load whose address is not a
/// constant, so staging only added copies and barriers. For the same reason each invocation takes
/// four rows, so that every key it loads serves four (BENCHMARKS.md has the figures).
///
/// Hardware shape (`flash_attention_*.wgsl`): one row per invocation, so a workgroup is BLOCK
/// invocations wide (two warps, one or two wavefronts), and the keys (or queries) are staged in
/// tiles of workgroup memory that all of them read.
pub(super) const BLOCK: usize = 64;

/// Rows each software-shaped attention invocation takes; the kernels hold them side by side in
/// `mat4x4`s.
const ROWS_PER_INVOCATION: usize = 4;

/// Workgroup memory the hardware-shaped attention kernels may use: WebGPU's guaranteed minimum
/// (`maxComputeWorkgroupStorageSize`), so that every adapter takes them.
pub(super) const WORKGROUP_BYTES: usize = 16384;

/// The largest head dimension the software-shaped kernels take. Past it their four rows of
/// `mat4x4`s per invocation (16 KiB at 256) take llvmpipe minutes to compile, so wider heads
/// (Gemma's 256) take the hardware shape on every adapter.
pub(super) const SOFTWARE_MAX_HEAD_DIM: usize = 128;

/// The largest head dimension the attention kernels take.
const MAX_HEAD_DIM: usize = 256;

/// Whether the attention kernels take this head dimension: rows are read as `vec4`s, and
/// per-invocation arrays are sized by it.
pub fn supports_head_dim(head_dim: usize) -> bool {
    head_dim.is_multiple_of(4) && head_dim <= MAX_HEAD_DIM
}

/// The three attention kernels.
#[derive(Clone, Copy, Debug)]
pub(super) enum AttentionPass {
    Forward,
    BackwardQuery,
    BackwardKeyValue,
}

impl AttentionPass {
    const ALL: [AttentionPass; 3] = [AttentionPass::Forward, AttentionPass::BackwardQuery, AttentionPass::BackwardKeyValue];
}

/// A kernel launched per element or per row (one of [`ROW_KERNELS`]).
pub(super) fn row(shader: Shader) -> Wgsl {
    Wgsl { name: shader.name, source: shader.source, values: vec![("block", ROW_BLOCK.to_string())], invocations: ROW_BLOCK }
}

/// An RMSNorm kernel (one of [`NORM_KERNELS`]).
pub(super) fn norm(shader: Shader) -> Wgsl {
    Wgsl { name: shader.name, source: shader.source, values: vec![("block", NORM_BLOCK.to_string())], invocations: NORM_BLOCK }
}

/// The shape the attention kernels take for heads of `head_dim` on an adapter whose kernels take
/// `adapter_shape`: wide heads take the hardware shape everywhere (see [`SOFTWARE_MAX_HEAD_DIM`]).
pub(super) fn attention_shape(head_dim: usize, adapter_shape: KernelShape) -> KernelShape {
    if head_dim > SOFTWARE_MAX_HEAD_DIM { KernelShape::Hardware } else { adapter_shape }
}

/// Keys (or queries) per tile of the hardware-shaped attention kernels of `pass`.
fn hardware_tile(pass: AttentionPass, head_dim: usize) -> usize {
    // Two tiles of `tile` rows, and for the key/value pass a log-sum-exp and a delta per row,
    // beside the block's shared range. 48 bytes are kept back for that range and for the per-row
    // arrays' rounding: Chrome's compiler counts each variable in whole 16 bytes.
    let per_row_extra = match pass {
        AttentionPass::BackwardKeyValue => 8,
        AttentionPass::Forward | AttentionPass::BackwardQuery => 0,
    };
    ((WORKGROUP_BYTES - 48) / (2 * head_dim * 4 + per_row_extra)).min(BLOCK)
}

/// Keys per tile of the hardware-shaped forward attention kernel, for people.
pub(super) fn forward_tile(head_dim: usize) -> usize {
    hardware_tile(AttentionPass::Forward, head_dim)
}

/// The attention kernel of `pass` for heads of `head_dim`, in `shape`.
pub(super) fn attention(pass: AttentionPass, head_dim: usize, shape: KernelShape) -> Wgsl {
    let head_dim_vec4 = ("head_dim_vec4", (head_dim / 4).to_string());
    match shape {
        KernelShape::Software => {
            let (name, source) = match pass {
                AttentionPass::Forward => ("attention_forward", ATTENTION_FORWARD),
                AttentionPass::BackwardQuery => ("attention_backward_query", ATTENTION_BACKWARD_QUERY),
                AttentionPass::BackwardKeyValue => ("attention_backward_key_value", ATTENTION_BACKWARD_KEY_VALUE),
            };
            let invocations = BLOCK / ROWS_PER_INVOCATION;
            let values = vec![head_dim_vec4, ("block", BLOCK.to_string()), ("invocations", invocations.to_string())];
            Wgsl { name, source, values, invocations }
        }
        KernelShape::Hardware => {
            let (name, source) = match pass {
                AttentionPass::Forward => ("flash_attention_forward", FLASH_ATTENTION_FORWARD),
                AttentionPass::BackwardQuery => ("flash_attention_backward_query", FLASH_ATTENTION_BACKWARD_QUERY),
                AttentionPass::BackwardKeyValue => ("flash_attention_backward_key_value", FLASH_ATTENTION_BACKWARD_KEY_VALUE),
            };
            let tile = hardware_tile(pass, head_dim);
            let values = vec![head_dim_vec4, ("block", BLOCK.to_string()), ("tile", tile.to_string())];
            Wgsl { name, source, values, invocations: BLOCK }
        }
    }
}

/// The WGSL matmul `a · b`: `b` row-major, or (`transposed_b`) a transposed row-major `[n, k]`
/// read where it lies; `b` in f16 (`f16_b`, multiplied in f32) or f32.
pub(super) fn matmul(transposed_b: bool, f16_b: bool) -> Wgsl {
    let (name, source) = if transposed_b { ("matmul_nt", MATMUL_NT) } else { ("matmul", MATMUL) };
    let (b_type, enable_f16) = if f16_b { ("f16", "enable f16;") } else { ("f32", "") };
    let values = vec![("block", MATMUL_BLOCK.to_string()), ("b_type", b_type.into()), ("enable_f16", enable_f16.into())];
    Wgsl { name, source, values, invocations: MATMUL_BLOCK }
}

/// The matmul over a packed weight of `bits` (8 or 4): `x · Wᵀ` (`transposed`) or `dy · W`.
pub(super) fn packed(transposed: bool, bits: usize) -> Wgsl {
    let (name, source) = if transposed { ("packed_matmul", PACKED_MATMUL) } else { ("packed_matmul_grad", PACKED_MATMUL_GRAD) };
    let values = vec![("block", MATMUL_BLOCK.to_string()), ("bits", bits.to_string())];
    Wgsl { name, source, values, invocations: MATMUL_BLOCK }
}

/// One kernel as the launcher can produce it, ready for a shader compiler.
#[derive(Clone, Debug)]
pub struct KernelVariant {
    /// The kernel and its template values, e.g. `flash_attention_forward head_dim=64`.
    pub label: String,
    /// The WGSL text the GPU's compiler receives.
    pub wgsl: String,
    /// Invocations per workgroup.
    pub invocations: usize,
    /// Whether it needs the `shader-f16` feature.
    pub needs_f16: bool,
}

/// Every kernel variant the launcher can produce: the row, element-wise and norm kernels, the
/// matmuls over f32 and f16 weights and packed int8 and int4 ones, and the attention kernels for
/// every head dimension they take, in each shape that takes it.
pub fn every_variant() -> Vec<KernelVariant> {
    let mut kernels: Vec<(String, Wgsl)> = Vec::new();
    for shader in ROW_KERNELS {
        kernels.push((shader.name.to_string(), row(shader)));
    }
    for shader in NORM_KERNELS {
        kernels.push((shader.name.to_string(), norm(shader)));
    }
    for transposed in [false, true] {
        for f16 in [false, true] {
            let kernel = matmul(transposed, f16);
            kernels.push((format!("{} b={}", kernel.name, if f16 { "f16" } else { "f32" }), kernel));
        }
        for bits in [8, 4] {
            let kernel = packed(transposed, bits);
            kernels.push((format!("{} bits={bits}", kernel.name), kernel));
        }
    }
    for head_dim in (4..=MAX_HEAD_DIM).step_by(4) {
        for pass in AttentionPass::ALL {
            for shape in [KernelShape::Software, KernelShape::Hardware] {
                if shape == KernelShape::Software && head_dim > SOFTWARE_MAX_HEAD_DIM {
                    continue;
                }
                let kernel = attention(pass, head_dim, shape);
                kernels.push((format!("{} head_dim={head_dim}", kernel.name), kernel));
            }
        }
    }
    kernels
        .into_iter()
        .map(|(label, kernel)| {
            let wgsl = kernel.text();
            KernelVariant { label, needs_f16: wgsl.contains("enable f16;"), invocations: kernel.invocations, wgsl }
        })
        .collect()
}
