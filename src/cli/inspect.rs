//! `wgtune inspect`: what a model is and what training it would take.

use anyhow::Result;
use clap::Args;
use wgtune::device::{AdapterLimits, ComputeDevice};
use wgtune::inspect::{StepPlan, check_bindings, check_fits, estimate_memory, generic_paths, human_bytes, human_count, trainable_count};
use wgtune::kernels::{KERNEL_NEEDS, describe_kernels, is_wgpu, shortfalls};
use wgtune::model::{BaseQuant, ModelFolder};

use super::train::TrainArgs;

#[derive(Args, Debug)]
pub struct InspectArgs {
    /// The training flags to estimate for (model, method, batch size, sequence length, ...).
    #[command(flatten)]
    pub train: TrainArgs,
}

pub fn run(args: InspectArgs) -> Result<()> {
    let mut config = args.train.to_config()?;
    if config.model.as_os_str().is_empty() {
        anyhow::bail!("--model is required");
    }
    config.data.train_file = "-".into();
    let folder = ModelFolder::open(&config.model)?;
    let c = &folder.config;
    if let Some(lora) = config.method.lora() {
        lora.validate_for(c)?;
    }
    let total = c.num_parameters();
    let trainable = trainable_count(c, &config.method);
    println!("model          {}", config.model.display());
    println!(
        "architecture   {} ({} layers, hidden {}, {} heads / {} kv heads, head dim {}, intermediate {})",
        c.architecture.name(),
        c.num_hidden_layers,
        c.hidden_size,
        c.num_attention_heads,
        c.num_key_value_heads,
        c.head_dim,
        c.intermediate_size
    );
    println!("vocabulary     {}", c.vocab_size);
    println!("context        {} tokens", c.max_position_embeddings);
    println!("stored as      {}", folder.storage());
    let generic = generic_paths(c);
    if generic.is_empty() {
        println!("kernels        fused attention, SwiGLU and loss (WGSL on wgpu, passes on every core on the CPU)");
    } else {
        println!("kernels        Burn's tensor operations for {}; fused elsewhere", generic.join(", "));
    }
    println!("parameters     {} ({total})", human_count(total));
    println!("method         {}", config.method.name());
    println!("trainable      {} ({trainable}, {:.3}%)", human_count(trainable), 100.0 * trainable as f64 / total as f64);
    // What is kept for the backward pass depends on the device's kernels.
    let device = ComputeDevice::open(config.device)?;
    if let Some(adapter) = &device.adapter {
        adapter_ui(&device.description, adapter, c.head_dim);
    }
    let plan = StepPlan::of(&config, is_wgpu(&device.device));
    let m = estimate_memory(c, &config.method, config.batch_size, config.data.max_seq_len, plan);
    let precision = if plan.f16_matmuls { ", f16 matmuls" } else { "" };
    let packed = match plan.base_quant.bits() {
        Some(_) => format!(", {} base", plan.base_quant),
        None => String::new(),
    };
    let checkpointing = if plan.recompute_layers { ", gradient checkpointing" } else { "" };
    println!(
        "memory for batch {} x {} tokens on {}{precision}{packed}{checkpointing} (estimate):",
        config.batch_size, config.data.max_seq_len, device.description
    );
    println!("  weights      {}", human_bytes(m.weights));
    println!("  AdamW state  {}", human_bytes(m.moments));
    println!("  gradients    {}", human_bytes(m.gradients));
    println!("  activations  {}", human_bytes(m.activations));
    println!("  logits       {}", human_bytes(m.logits));
    println!("  total        {} (the backward frees activations as gradients fill in)", human_bytes(m.total));
    if let Some(limit) = device.memory_limit
        && let Err(too_big) = check_fits(c, &config, is_wgpu(&device.device), config.data.max_seq_len, limit, &device.description)
    {
        println!("  does not fit: {too_big}");
    }
    if let Some(adapter) = &device.adapter
        && let Err(too_big) = check_bindings(c, &config, config.data.max_seq_len, adapter, &device.description)
    {
        println!("  does not fit: {too_big}");
    }
    if config.method.lora().is_some() {
        laptop_shapes_ui(&config, plan)?;
    }
    Ok(())
}

/// What the same LoRA settings need on Llama-shaped models of 1, 3 and 8 billion parameters, for
/// each way of storing the frozen base: the sizes people pick a laptop for.
fn laptop_shapes_ui(config: &wgtune::train::TrainConfig, plan: StepPlan) -> Result<()> {
    println!("the same settings on Llama 3 shapes (estimate; base stored as):");
    let header: String = BaseQuant::ALL.iter().map(|q| format!("{:>12}", q.to_string())).collect();
    println!("  {:<10}{header}", "");
    for shape in ["llama-1b", "llama-3b", "llama-8b"] {
        let c = wgtune::bench::shape_config(shape)?;
        let cells: String = BaseQuant::ALL
            .iter()
            .map(|&base_quant| {
                let m = estimate_memory(&c, &config.method, config.batch_size, config.data.max_seq_len, StepPlan { base_quant, ..plan });
                format!("{:>12}", human_bytes(m.total))
            })
            .collect();
        println!("  {shape:<10}{cells}");
    }
    Ok(())
}

/// The wgpu adapter's limits that the kernels depend on, and which kernel each operation takes.
fn adapter_ui(description: &str, adapter: &AdapterLimits, head_dim: usize) {
    let kind = if adapter.software { "software" } else { "hardware" };
    let yes_no = |b: bool| if b { "yes" } else { "no" };
    println!("adapter        {description} ({kind})");
    println!(
        "  limits       {} invocations per workgroup, {} KiB of workgroup memory, {} storage buffers per stage, bindings up to {}, buffers up to {}",
        adapter.invocations_per_workgroup,
        adapter.workgroup_storage_bytes / 1024,
        adapter.storage_buffers_per_stage,
        human_bytes(adapter.storage_binding_bytes),
        human_bytes(adapter.buffer_bytes)
    );
    println!("  features     shader-f16 {}, subgroups {}", yes_no(adapter.shader_f16), yes_no(adapter.subgroups));
    let needs = KERNEL_NEEDS;
    let short = shortfalls(adapter);
    let verdict = if short.is_empty() { "the adapter has them".to_string() } else { format!("it falls short: {}", short.join(", ")) };
    println!(
        "  kernels need {} invocations, {} KiB of workgroup memory, {} storage buffers: {verdict}",
        needs.invocations_per_workgroup,
        needs.workgroup_storage_bytes / 1024,
        needs.storage_buffers_per_stage
    );
    for (operation, kernel) in describe_kernels(adapter, head_dim) {
        println!("  {operation:<12} {kernel}");
    }
}
