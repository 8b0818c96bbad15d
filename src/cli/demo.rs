//! `wgtune demo`: the main job end to end on the bundled model and dataset (or on `--model`):
//! generate, fine-tune with LoRA, generate again, export merged weights and check them.

use std::path::{Path, PathBuf};
use std::sync::mpsc::channel;

use anyhow::{Context, Result};
use clap::Args;
use wgtune::data::DataConfig;
use wgtune::device::DeviceChoice;
use wgtune::generate::GenerationSettings;
use wgtune::method::{LoraSettings, Method};
use wgtune::session::LoadedModel;
use wgtune::train::{EventSink, OptimizerConfig, RunStart, ScheduleKind, TrainConfig, output_dir_in_use, train};

use super::progress::TrainProgress;

const ASSETS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/assets");

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Model to fine-tune [default: the bundled assets/demo-model].
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Training data [default: assets/demo/train.jsonl].
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Run directory [default: runs/demo, or runs/demo-2, -3, … when it holds an earlier run].
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// Optimizer steps.
    #[arg(long, default_value_t = 60)]
    pub steps: usize,
    /// Where to train: auto, wgpu or cpu.
    #[arg(long, default_value_t = DeviceChoice::Auto)]
    pub device: DeviceChoice,
    /// Prompts to compare before and after (repeatable) [default: questions the demo data answers].
    #[arg(long = "prompt")]
    pub prompts: Vec<String>,
}

pub fn run(args: DemoArgs) -> Result<()> {
    let assets = Path::new(ASSETS);
    let model_dir = match &args.model {
        Some(m) => wgtune::hub::resolve_model(m)?,
        None => assets.join("demo-model"),
    };
    let data = args.data.clone().unwrap_or_else(|| assets.join("demo/train.jsonl"));
    let validation = args.data.is_none().then(|| assets.join("demo/validation.jsonl"));
    let prompts = if args.prompts.is_empty() {
        // Zorbia is in the training data, Kelvoria only with other wording, Japan not at all.
        vec![
            "What is the capital of Zorbia?".to_string(),
            "Tell me the capital of Kelvoria.".to_string(),
            "What is the capital of Japan?".to_string(),
        ]
    } else {
        args.prompts.clone()
    };
    let greedy = GenerationSettings { max_new_tokens: 32, ..Default::default() };
    // A demo never replaces an earlier run: without --output it takes the next free folder.
    let output = args.output.clone().unwrap_or_else(|| {
        (1..)
            .map(|n| PathBuf::from(if n == 1 { "runs/demo".to_string() } else { format!("runs/demo-{n}") }))
            .find(|dir| !output_dir_in_use(dir))
            .unwrap_or_default()
    });

    println!("== 1. The base model: {}", model_dir.display());
    let base = LoadedModel::load(&model_dir, args.device).context("loading the base model")?;
    println!("   on {}", base.device.description);
    show(&base, &prompts, &greedy)?;
    drop(base);

    println!("\n== 2. LoRA fine-tuning on {}", data.display());
    let config = TrainConfig {
        model: model_dir.clone(),
        output_dir: output.clone(),
        device: args.device,
        max_steps: Some(args.steps),
        batch_size: 8,
        save_every: 0,
        eval_every: 20,
        data: DataConfig { train_file: data, validation_file: validation, max_seq_len: 256, ..Default::default() },
        method: Method::Lora(LoraSettings { rank: 16, alpha: 32.0, dropout: 0.0, ..Default::default() }),
        optim: OptimizerConfig { lr: 2e-3, warmup_steps: 5, schedule: ScheduleKind::Cosine, ..Default::default() },
        ..Default::default()
    };
    let (events_tx, events_rx) = channel();
    let (_commands_tx, commands_rx) = channel();
    let progress = TrainProgress::spawn(events_rx, false);
    let result = train(&config, RunStart::New, &EventSink::new(events_tx), &commands_rx);
    progress.finish();
    let summary = result?;
    println!("   adapter written to {}", summary.final_checkpoint.display());

    println!("\n== 3. The fine-tuned model");
    let tuned = LoadedModel::load(&model_dir, args.device)?.with_trained(&summary.final_checkpoint)?;
    show(&tuned, &prompts, &greedy)?;

    let merged = output.join("merged");
    println!("\n== 4. Exporting merged weights to {}", merged.display());
    tuned.export_merged(&merged, None, false, |_, _| {})?;
    let reloaded = LoadedModel::load(&merged, args.device)?;
    let check = &prompts[0];
    let (a, b) = (tuned.generate(check, &greedy)?, reloaded.generate(check, &greedy)?);
    println!("   reloaded from the export: {check} → {b}");
    if a != b {
        anyhow::bail!("the merged export answers differently from the adapter: {a:?} vs {b:?}");
    }
    println!("\nDone. Try: wgtune generate --model {} --prompt \"{}\"", merged.display(), prompts[0]);
    Ok(())
}

fn show(model: &LoadedModel, prompts: &[String], settings: &GenerationSettings) -> Result<()> {
    for prompt in prompts {
        println!("   {prompt}\n     → {}", model.generate(prompt, settings)?);
    }
    Ok(())
}
