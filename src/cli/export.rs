//! `wgtune export`: merged weights as a Hugging Face folder or a GGUF file, the LoRA adapter in
//! PEFT's or llama.cpp's format, a folder for `ollama create`, and a recipe that runs the same
//! training on a GPU cluster with TRL or Axolotl.

use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::Args;
use indicatif::ProgressBar;
use wgtune::device::DeviceChoice;
use wgtune::gguf::{EXPORT_TYPES, GgmlType};
use wgtune::model::WeightDtype;
use wgtune::session::LoadedModel;

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("outputs").required(true).multiple(true).args(["merged", "adapter_out", "gguf", "gguf_adapter", "ollama", "recipe"])))]
pub struct ExportArgs {
    /// The base model the weights were trained on (folder, .gguf file, ollama:NAME or a Hugging Face model id) [default: the run's, from its run.toml].
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Trained weights: a run directory, one of its checkpoints, or a PEFT adapter folder (for --recipe: a run directory or its run.toml) [default: none, the model as it is, e.g. a full fine-tuning's output to GGUF].
    #[arg(long, visible_alias = "run")]
    pub trained: Option<PathBuf>,
    /// Write a recipe that trains the same run on a GPU cluster: TARGET is trl or axolotl, DIR the folder (records, config, launch.sh, README).
    #[arg(long, num_args = 2, value_names = ["TARGET", "DIR"])]
    pub recipe: Option<Vec<String>>,
    /// Processes (GPUs, over all nodes) the recipe's batch is split for, keeping the run's global batch.
    #[arg(long, default_value_t = 1)]
    pub world_size: usize,
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
    if let Some(recipe) = &args.recipe {
        export_recipe(&args, recipe)?;
    }
    let outputs_from_weights = [&args.merged, &args.adapter_out, &args.gguf, &args.gguf_adapter, &args.ollama];
    if outputs_from_weights.iter().all(|o| o.is_none()) {
        return Ok(());
    }
    let model = match &args.model {
        Some(model) => model.clone(),
        None => match &args.trained {
            Some(trained) => run_settings(trained)?.model,
            None => anyhow::bail!("pass --model (and --trained for a run's weights)"),
        },
    };
    let model_dir = super::progress::resolve_model(&model)?;
    let outputs: Vec<&PathBuf> =
        [&args.merged, &args.adapter_out, &args.gguf, &args.gguf_adapter, &args.ollama].into_iter().flatten().collect();
    for (i, a) in outputs.iter().enumerate() {
        if outputs[..i].iter().any(|b| std::path::absolute(a).ok() == std::path::absolute(b).ok()) {
            anyhow::bail!("{} is given for two exports; give each its own", a.display());
        }
    }
    // Refuse a target before the minutes of loading and merging, not after.
    let sources: Vec<&Path> = [Some(model_dir.as_path()), args.trained.as_deref()].into_iter().flatten().collect();
    for out in [&args.merged, &args.adapter_out, &args.ollama].into_iter().flatten() {
        wgtune::fsutil::check_target(out, &sources, args.overwrite, "--overwrite")?;
    }
    for out in [&args.gguf, &args.gguf_adapter].into_iter().flatten() {
        wgtune::fsutil::check_file_target(out, &sources, args.overwrite, "--overwrite")?;
    }
    let model = LoadedModel::load(&model_dir, args.device)?;
    let model = match &args.trained {
        Some(trained) => model.with_trained(trained)?,
        None => model,
    };
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

/// The settings of the run at `trained`: its `run.toml`, or the file itself when one is given.
fn run_settings(trained: &Path) -> Result<wgtune::train::TrainConfig> {
    let file = if trained.is_file() { trained.to_path_buf() } else { trained.join(wgtune::train::RUN_CONFIG_FILE) };
    if !file.is_file() {
        anyhow::bail!(
            "{}: no {} here to read the run's settings from; pass --model, or a run directory wgtune trained",
            trained.display(),
            wgtune::train::RUN_CONFIG_FILE
        );
    }
    Ok(wgtune::train::TrainConfig::from_toml_file(&file)?)
}

/// `--recipe TARGET DIR`: the run's settings and records as a recipe for TRL or Axolotl.
fn export_recipe(args: &ExportArgs, recipe: &[String]) -> Result<()> {
    let [target, dir] = recipe else { anyhow::bail!("--recipe takes a target (trl or axolotl) and a folder") };
    let target: wgtune::recipe::RecipeTarget = target.parse().map_err(|e: String| anyhow::anyhow!("--recipe: {e}"))?;
    let Some(trained) = &args.trained else { anyhow::bail!("--recipe needs --run: a run directory, or its run.toml") };
    let mut run = run_settings(trained)?;
    if let Some(model) = &args.model {
        run.model = model.clone();
    }
    let dir = Path::new(dir);
    let summary = wgtune::recipe::write_recipe(&run, target, args.world_size, dir, args.overwrite)?;
    println!(
        "{target} recipe written to {}: {} training and {} validation records ({}), {} sequences per process x {} accumulation x {} processes; launch with {}",
        dir.display(),
        summary.train_records,
        summary.validation_records,
        summary.form.name(),
        summary.micro_batch,
        summary.accumulation,
        args.world_size,
        dir.join("launch.sh").display()
    );
    Ok(())
}
