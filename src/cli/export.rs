//! `wgtune export`: merged weights as a Hugging Face folder or a GGUF file, the LoRA adapter in
//! PEFT's or llama.cpp's format, and a folder for `ollama create`.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use indicatif::ProgressBar;
use wgtune::device::DeviceChoice;
use wgtune::gguf::{EXPORT_TYPES, GgmlType};
use wgtune::model::WeightDtype;
use wgtune::session::LoadedModel;

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("outputs").required(true).multiple(true).args(["merged", "adapter_out", "gguf", "gguf_adapter", "ollama"])))]
pub struct ExportArgs {
    /// The base model the weights were trained on (folder, .gguf file, ollama:NAME or a Hugging Face model id).
    #[arg(long)]
    pub model: PathBuf,
    /// Trained weights: a run directory, one of its checkpoints, or a PEFT adapter folder.
    #[arg(long, visible_alias = "run")]
    pub trained: PathBuf,
    /// Write merged weights here, as a Hugging Face model folder.
    #[arg(long, value_name = "DIR")]
    pub merged: Option<PathBuf>,
    /// dtype of the merged weights: f32, f16, bf16 [default: the source model's].
    #[arg(long)]
    pub dtype: Option<WeightDtype>,
    /// Write the LoRA adapter here, in PEFT format.
    #[arg(long, value_name = "DIR")]
    pub adapter_out: Option<PathBuf>,
    /// Write merged weights as one GGUF file for llama.cpp, LM Studio and Ollama.
    #[arg(long, value_name = "FILE")]
    pub gguf: Option<PathBuf>,
    /// Type of the GGUF weight matrices (--gguf and --ollama): f32, f16, q8_0, q4_0.
    #[arg(long, default_value = "f16", value_parser = parse_gguf_type)]
    pub gguf_type: GgmlType,
    /// Write the LoRA adapter as llama.cpp's adapter GGUF (llama.cpp --lora, Ollama ADAPTER).
    #[arg(long, value_name = "FILE")]
    pub gguf_adapter: Option<PathBuf>,
    /// Write DIR/model.gguf and DIR/Modelfile, for `ollama create NAME -f DIR/Modelfile`.
    #[arg(long, value_name = "DIR")]
    pub ollama: Option<PathBuf>,
    /// Replace an output that exists (never the model or the trained weights being read, nor a
    /// folder holding them).
    #[arg(long)]
    pub overwrite: bool,
    /// Where to merge: wgpu or cpu.
    #[arg(long, default_value_t = DeviceChoice::Cpu)]
    pub device: DeviceChoice,
}

fn parse_gguf_type(s: &str) -> Result<GgmlType, String> {
    EXPORT_TYPES.iter().find(|(name, _)| name.eq_ignore_ascii_case(s)).map(|(_, t)| *t).ok_or_else(|| {
        let names: Vec<&str> = EXPORT_TYPES.iter().map(|(n, _)| *n).collect();
        format!("`{s}`: expected one of {}", names.join(", "))
    })
}

pub fn run(args: ExportArgs) -> Result<()> {
    let model_dir = super::progress::resolve_model(&args.model)?;
    let outputs: Vec<&PathBuf> =
        [&args.merged, &args.adapter_out, &args.gguf, &args.gguf_adapter, &args.ollama].into_iter().flatten().collect();
    for (i, a) in outputs.iter().enumerate() {
        if outputs[..i].iter().any(|b| std::path::absolute(a).ok() == std::path::absolute(b).ok()) {
            anyhow::bail!("{} is given for two exports; give each its own", a.display());
        }
    }
    // Refuse a target before the minutes of loading and merging, not after.
    let sources = [model_dir.as_path(), args.trained.as_path()];
    for out in [&args.merged, &args.adapter_out, &args.ollama].into_iter().flatten() {
        wgtune::fsutil::check_target(out, &sources, args.overwrite, "--overwrite")?;
    }
    for out in [&args.gguf, &args.gguf_adapter].into_iter().flatten() {
        wgtune::fsutil::check_file_target(out, &sources, args.overwrite, "--overwrite")?;
    }
    let model = LoadedModel::load(&model_dir, args.device)?.with_trained(&args.trained)?;
    let bar = ProgressBar::new(0);
    let progress = |done: usize, total: usize| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    };
    if let Some(out) = &args.merged {
        model.export_merged(out, args.dtype, args.overwrite, progress)?;
        bar.finish_and_clear();
        println!("merged weights written to {}", out.display());
    }
    if let Some(out) = &args.adapter_out {
        model.export_adapter(out, args.overwrite)?;
        println!("adapter written to {}", out.display());
    }
    if let Some(out) = &args.gguf {
        model.export_gguf(out, args.gguf_type, args.overwrite, progress)?;
        bar.finish_and_clear();
        println!("merged GGUF ({}) written to {}", args.gguf_type.name(), out.display());
    }
    if let Some(out) = &args.gguf_adapter {
        model.export_gguf_adapter(out, args.overwrite)?;
        println!("LoRA adapter GGUF written to {}", out.display());
    }
    if let Some(out) = &args.ollama {
        model.export_ollama(out, args.gguf_type, args.overwrite, progress)?;
        bar.finish_and_clear();
        println!("Ollama model written to {}; add it with: ollama create NAME -f {}", out.display(), out.join("Modelfile").display());
    }
    Ok(())
}
