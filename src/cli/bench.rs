//! `wgtune bench`: time training steps and print (and optionally save) the figures.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use wgtune::bench::{BenchConfig, BenchModel, run};
use wgtune::device::DeviceChoice;
use wgtune::inspect::human_bytes;
use wgtune::kernels::KernelShape;
use wgtune::method::{LoraSettings, Method};
use wgtune::model::{BaseQuant, Precision};

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["model", "shape"])))]
pub struct BenchArgs {
    /// A model folder to benchmark.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// A named shape with random weights: smollm2-135m or llama-1b.
    #[arg(long)]
    pub shape: Option<String>,
    /// Keep only the first N decoder layers of the shape: a quicker profile, since every layer costs the same.
    #[arg(long)]
    pub layers: Option<usize>,
    /// Where to run: auto, wgpu or cpu.
    #[arg(long, default_value_t = DeviceChoice::Auto)]
    pub device: DeviceChoice,
    /// lora or full.
    #[arg(long, default_value = "lora")]
    pub method: String,
    /// LoRA rank (on all seven projections).
    #[arg(long, default_value_t = 16)]
    pub rank: usize,
    /// LoRA dropout: 0 in the reference benchmarks; `wgtune train`'s default is 0.05.
    #[arg(long, default_value_t = 0.0)]
    pub lora_dropout: f64,
    /// Sequences per step.
    #[arg(long, default_value_t = 4)]
    pub batch_size: usize,
    /// Tokens per sequence.
    #[arg(long, default_value_t = 256)]
    pub seq_len: usize,
    /// Untimed steps first (kernel compilation, allocator growth).
    #[arg(long, default_value_t = 2)]
    pub warmup: usize,
    /// Timed steps.
    #[arg(long, default_value_t = 5)]
    pub steps: usize,
    /// LoRA in factored form (x·W + s·(x·A)·B) or materialized (x·(W + s·A·B), Burn's default).
    #[arg(long, default_value = "factored")]
    pub lora: String,
    /// fused (the WGSL kernels on wgpu) or generic (Burn's tensor operations only).
    #[arg(long, default_value = "fused")]
    pub kernels: String,
    /// shared: the frozen q/k/v and gate/up projections multiply in one matmul each; separate: one
    /// matmul per projection (always with `--lora materialized`).
    #[arg(long, default_value = "shared")]
    pub projections: String,
    /// Force the fused kernels' shape on wgpu: software (lavapipe's) or hardware (a GPU's,
    /// FlashAttention-2-shaped) [default: the adapter's].
    #[arg(long)]
    pub kernel_shape: Option<KernelShape>,
    /// Keep only each decoder layer's input and recompute the layer in the backward pass [default: off].
    #[arg(long)]
    pub gradient_checkpointing: bool,
    /// f16: run the weight matrices' matmuls in half precision (LoRA: frozen weights stored in f16, trained weights f32 masters).
    #[arg(long, default_value = "f32")]
    pub precision: Precision,
    /// LoRA over a base packed in blocks of 32: none, int8 or int4.
    #[arg(long, default_value = "none")]
    pub base_quant: BaseQuant,
    /// Time every kernel with CubeCL's profiler and print device time by op family (matmul,
    /// element-wise, ...). Each launch is waited for, so the step itself runs slower.
    #[arg(long)]
    pub profile_kernels: bool,
    /// Also write the report as JSON here (a new file, unless --overwrite).
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Replace the --json file when it exists.
    #[arg(long)]
    pub overwrite: bool,
}

pub fn run_bench(args: BenchArgs) -> Result<()> {
    // Before the minutes of timing, not after.
    if let Some(path) = &args.json {
        wgtune::fsutil::check_file_target(path, &[], args.overwrite, "--overwrite")?;
    }
    let method = match args.method.as_str() {
        "lora" if !(0.0..1.0).contains(&args.lora_dropout) => {
            anyhow::bail!("--lora-dropout {}: expected a probability from 0 up to (not including) 1", args.lora_dropout)
        }
        "lora" => {
            Method::Lora(LoraSettings { rank: args.rank, alpha: 2.0 * args.rank as f64, dropout: args.lora_dropout, ..Default::default() })
        }
        "full" => Method::Full,
        other => anyhow::bail!("--method `{other}`: expected lora or full"),
    };
    let materialize_lora = match args.lora.as_str() {
        "factored" => false,
        "materialized" => true,
        other => anyhow::bail!("--lora `{other}`: expected factored or materialized"),
    };
    let fused = match args.kernels.as_str() {
        "fused" => true,
        "generic" => false,
        other => anyhow::bail!("--kernels `{other}`: expected fused or generic"),
    };
    let shared_projections = match args.projections.as_str() {
        "shared" => !materialize_lora,
        "separate" => false,
        other => anyhow::bail!("--projections `{other}`: expected shared or separate"),
    };
    if args.layers.is_some() && args.shape.is_none() {
        anyhow::bail!("--layers cuts a named --shape; a --model folder is benchmarked whole");
    }
    let model = match (&args.model, &args.shape) {
        (Some(path), _) => BenchModel::Folder(super::progress::resolve_model(path)?),
        (None, Some(shape)) => BenchModel::Shape { name: shape.clone(), layers: args.layers },
        (None, None) => unreachable!("clap requires one"),
    };
    let report = run(&BenchConfig {
        model,
        device: args.device,
        method,
        batch_size: args.batch_size,
        seq_len: args.seq_len,
        warmup_steps: args.warmup,
        steps: args.steps,
        materialize_lora,
        shared_projections,
        fused,
        kernel_shape: args.kernel_shape,
        gradient_checkpointing: args.gradient_checkpointing,
        precision: args.precision,
        base_quant: args.base_quant,
        profile_kernels: args.profile_kernels,
    })?;
    println!("model        {}", report.model);
    println!("device       {}", report.device);
    let checkpointing = if report.gradient_checkpointing { ", gradient checkpointing" } else { "" };
    let lora = match report.method.as_str() {
        "lora" if report.lora_dropout > 0.0 => format!("{} LoRA, dropout {}, ", report.lora, report.lora_dropout),
        "lora" => format!("{} LoRA, ", report.lora),
        _ => String::new(),
    };
    let projections = if report.shared_projections { "shared" } else { "separate" };
    println!(
        "method       {} ({lora}{} kernels, {projections} projections, {}, {} base{checkpointing}), {} of {} parameters trainable",
        report.method, report.kernels, report.precision, report.base_quant, report.trainable_parameters, report.total_parameters
    );
    println!("batch        {} x {} tokens, {} timed steps", report.batch_size, report.seq_len, report.steps);
    println!("throughput   {:.1} tokens/s, {:.0} ms/step", report.tokens_per_second, report.ms_per_step);
    println!(
        "breakdown    forward {:.0} ms, backward {:.0} ms, optimizer {:.0} ms",
        report.forward_ms, report.backward_ms, report.optimizer_ms
    );
    if let Some(bytes) = report.peak_device_bytes {
        let in_use = report.peak_device_in_use_bytes.map(|b| format!(" ({} in live tensors)", human_bytes(b))).unwrap_or_default();
        println!("device peak  {} reserved{in_use}", human_bytes(bytes));
    }
    if let Some(bytes) = report.peak_rss_bytes {
        println!("process peak {} resident", human_bytes(bytes));
    }
    println!("estimate     {}", human_bytes(report.estimated_bytes));
    match &report.kernel_families {
        Some(families) => {
            let total: f64 = families.iter().map(|f| f.ms).sum();
            let launches: usize = families.iter().map(|f| f.launches).sum();
            println!("device time by op family, per step ({total:.0} ms profiled, {launches} launches):");
            for f in families {
                let share = 100.0 * f.ms / total.max(f64::MIN_POSITIVE);
                println!("  {:<22} {:>9.0} ms {:>5.1} % {:>6} launches", f.family, f.ms, share, f.launches);
            }
        }
        None if args.profile_kernels => println!("kernel times none: only the wgpu backend has a kernel profiler"),
        None => {}
    }
    if let Some(path) = &report.kernel_log {
        println!("kernel log   {} (every launch, warm-up included)", path.display());
    }
    if let Some(path) = &args.json {
        wgtune::fsutil::write_atomic(path, serde_json::to_string_pretty(&report)?.as_bytes())?;
    }
    Ok(())
}
