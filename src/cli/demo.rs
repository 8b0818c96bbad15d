//! `wgtune demo`: the main job end to end on the bundled model and dataset (or on `--model`):
//! generate, fine-tune with LoRA, generate again, export merged weights and check them.

use std::path::PathBuf;
use std::sync::mpsc::channel;

use anyhow::{Context, Result};
use clap::Args;
use wgtune::bundled::bundled;
use wgtune::classify::evaluate_classifier;
use wgtune::data::{DataConfig, read_labelled_file};
use wgtune::device::DeviceChoice;
use wgtune::generate::GenerationSettings;
use wgtune::method::{LoraSettings, Method};
use wgtune::session::LoadedModel;
use wgtune::train::{EventSink, OptimizerConfig, RunStart, RunSummary, ScheduleKind, Task, TrainConfig, output_dir_in_use, train};

use super::progress::TrainProgress;

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Model to fine-tune [default: the bundled demo model].
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Training data [default: the bundled questions, or reviews with --task classification].
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Run directory [default: runs/demo, or runs/demo-2, -3, … when it holds an earlier run].
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// Optimizer steps [default: 60; 150 for classification].
    #[arg(long)]
    pub steps: Option<usize>,
    /// Where to train: auto, wgpu or cpu.
    #[arg(long, default_value_t = DeviceChoice::Auto)]
    pub device: DeviceChoice,
    /// Prompts to compare before and after (repeatable) [default: questions the demo data answers].
    #[arg(long = "prompt")]
    pub prompts: Vec<String>,
    /// causal-lm: answer questions (the bundled demo data); classification: label product
    /// reviews by topic with a classification head (the bundled reviews).
    #[arg(long, default_value_t = Task::CausalLm)]
    pub task: Task,
}

pub fn run(args: DemoArgs) -> Result<()> {
    if args.task == Task::Classification {
        return run_classification(args);
    }
    let bundle = bundled().context("writing out the bundled demo model and data")?;
    let model_dir = match &args.model {
        Some(m) => super::progress::resolve_model(m)?,
        None => bundle.demo_model(),
    };
    let questions = bundle.questions();
    let data = args.data.clone().unwrap_or(questions.train);
    let validation = args.data.is_none().then_some(questions.validation);
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
    let output = args.output.clone().unwrap_or_else(|| free_run_dir("runs/demo"));

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
        max_steps: Some(args.steps.unwrap_or(60)),
        batch_size: 8,
        save_every: 0,
        eval_every: 20,
        data: DataConfig { train_file: data, validation_file: validation, max_seq_len: 256, ..Default::default() },
        method: Method::Lora(LoraSettings { rank: 16, alpha: 32.0, dropout: 0.0, ..Default::default() }),
        optim: OptimizerConfig { lr: 2e-3, warmup_steps: 5, schedule: ScheduleKind::Cosine, ..Default::default() },
        ..Default::default()
    };
    let summary = train_with_progress(&config)?;
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

/// Trains with a progress bar in the terminal.
fn train_with_progress(config: &TrainConfig) -> Result<RunSummary> {
    let (events_tx, events_rx) = channel();
    let (_commands_tx, commands_rx) = channel();
    let progress = TrainProgress::spawn(events_rx, false);
    let result = train(config, RunStart::New, &EventSink::new(events_tx), &commands_rx);
    progress.finish();
    Ok(result?)
}

/// A demo never replaces an earlier run: without --output it takes the next free folder.
fn free_run_dir(stem: &str) -> PathBuf {
    (1..)
        .map(|n| PathBuf::from(if n == 1 { stem.to_string() } else { format!("{stem}-{n}") }))
        .find(|dir| !output_dir_in_use(dir))
        .unwrap_or_default()
}

/// `wgtune demo --task classification`: the base model's zero-shot accuracy on held-out
/// reviews, a LoRA classifier trained on the others, its accuracy, and its export reloaded.
fn run_classification(args: DemoArgs) -> Result<()> {
    let bundle = bundled().context("writing out the bundled demo model and data")?;
    let model_dir = match &args.model {
        Some(m) => super::progress::resolve_model(m)?,
        None => bundle.demo_model(),
    };
    let reviews = bundle.reviews();
    let data = args.data.clone().unwrap_or(reviews.train);
    let validation = args.data.is_none().then_some(reviews.validation);
    let output = args.output.clone().unwrap_or_else(|| free_run_dir("runs/demo-classifier"));
    let data_config = DataConfig {
        train_file: data.clone(),
        validation_file: validation.clone(),
        validation_fraction: if validation.is_some() { 0.0 } else { 0.2 },
        max_seq_len: 128,
        ..Default::default()
    };

    println!("== 1. The base model, zero-shot: {}", model_dir.display());
    let base = LoadedModel::load(&model_dir, args.device).context("loading the base model")?;
    let held_out = validation.clone().unwrap_or_else(|| data.clone());
    let (examples, labels, _) = read_labelled_file(&held_out, &data_config, &base.tokenizer, None)?;
    let before = evaluate_classifier(&base.model, &base.tokenizer, &examples, &labels)?;
    println!("   classes: {}; held-out accuracy {:.1} %", labels.names.join(", "), 100.0 * before.scores.accuracy);
    drop(base);

    println!("\n== 2. Training a classification head with LoRA on {}", data.display());
    let config = TrainConfig {
        model: model_dir.clone(),
        output_dir: output.clone(),
        device: args.device,
        task: Task::Classification,
        max_steps: Some(args.steps.unwrap_or(150)),
        batch_size: 8,
        save_every: 0,
        eval_every: 25,
        data: data_config.clone(),
        method: Method::Lora(LoraSettings { rank: 32, alpha: 64.0, dropout: 0.0, ..Default::default() }),
        optim: OptimizerConfig { lr: 2e-3, warmup_steps: 5, schedule: ScheduleKind::Cosine, ..Default::default() },
        ..Default::default()
    };
    let summary = train_with_progress(&config)?;

    println!("\n== 3. The classifier on the held-out reviews");
    let tuned = LoadedModel::load(&model_dir, args.device)?.with_trained(&summary.final_checkpoint)?;
    let after = evaluate_classifier(&tuned.model, &tuned.tokenizer, &examples, &labels)?;
    println!(
        "   accuracy {:.1} % (zero-shot {:.1} %), macro F1 {:.1} %",
        100.0 * after.scores.accuracy,
        100.0 * before.scores.accuracy,
        100.0 * after.scores.macro_f1
    );
    for answer in after.answers.iter().take(3) {
        println!("   {} → {} ({:.0} %)", answer.text.trim(), answer.predicted, 100.0 * answer.confidence);
    }

    let merged = output.join("merged");
    println!("\n== 4. Exporting a Hugging Face classifier to {}", merged.display());
    tuned.export_merged(&merged, None, false, |_, _| {})?;
    let reloaded = LoadedModel::load(&merged, args.device)?;
    let again = evaluate_classifier(&reloaded.model, &reloaded.tokenizer, &examples, &labels)?;
    let differ = after.answers.iter().zip(&again.answers).filter(|(a, b)| a.predicted != b.predicted).count();
    if differ > 0 {
        anyhow::bail!("the merged export labels {differ} held-out reviews differently from the adapter");
    }
    println!("   reloaded from the export: the same {} classes", again.answers.len());
    let example = "The box arrived a week late and soaking wet.";
    println!("\nDone. Try: wgtune generate --model {} --prompt \"{example}\"", merged.display());
    Ok(())
}

fn show(model: &LoadedModel, prompts: &[String], settings: &GenerationSettings) -> Result<()> {
    for prompt in prompts {
        println!("   {prompt}\n     → {}", model.generate(prompt, settings)?);
    }
    Ok(())
}
