//! `wgtune export`: merged weights as a Hugging Face folder, and/or the PEFT adapter.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use indicatif::ProgressBar;
use wgtune::device::DeviceChoice;
use wgtune::model::WeightDtype;
use wgtune::session::LoadedModel;

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("outputs").required(true).multiple(true).args(["merged", "adapter_out"])))]
pub struct ExportArgs {
    /// The base model the weights were trained on (folder, .gguf file, ollama:NAME or cached model id).
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
    /// Replace an output folder that exists and is not empty (never the model or the trained
    /// weights being read, nor a folder holding them).
    #[arg(long)]
    pub overwrite: bool,
    /// Where to merge: wgpu or cpu.
    #[arg(long, default_value_t = DeviceChoice::Cpu)]
    pub device: DeviceChoice,
}

pub fn run(args: ExportArgs) -> Result<()> {
    let model_dir = wgtune::hub::resolve_model(&args.model)?;
    if let (Some(merged), Some(adapter)) = (&args.merged, &args.adapter_out)
        && std::path::absolute(merged).ok() == std::path::absolute(adapter).ok()
    {
        anyhow::bail!("--merged and --adapter-out are the same folder ({}); give each its own", merged.display());
    }
    // Refuse a target before the minutes of loading and merging, not after.
    for out in [&args.merged, &args.adapter_out].into_iter().flatten() {
        wgtune::fsutil::check_target(out, &[&model_dir, &args.trained], args.overwrite, "--overwrite")?;
    }
    let model = LoadedModel::load(&model_dir, args.device)?.with_trained(&args.trained)?;
    if let Some(out) = &args.merged {
        let bar = ProgressBar::new(0);
        model.export_merged(out, args.dtype, args.overwrite, |done, total| {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        })?;
        bar.finish_and_clear();
        println!("merged weights written to {}", out.display());
    }
    if let Some(out) = &args.adapter_out {
        model.export_adapter(out, args.overwrite)?;
        println!("adapter written to {}", out.display());
    }
    Ok(())
}
