//! Command-line front: parses arguments and hands them to the engine.

mod bench;
mod demo;
mod eval;
mod export;
mod generate;
mod inspect;
mod progress;
mod runtime_dir;
mod train;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "wgtune",
    version = wgtune::VERSION,
    about = "Fine-tune Llama-family language models (LoRA or full) on any GPU through WebGPU, or on the CPU.",
    long_about = "Fine-tune Llama-family language models (LoRA or full) on any GPU through WebGPU, or on the CPU.\n\nWithout a subcommand, wgtune opens the desktop app."
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Fine-tune a model on a dataset.
    Train(train::TrainArgs),
    /// Generate text from a model, with or without trained weights.
    Generate(generate::GenerateArgs),
    /// Write merged weights (a Hugging Face folder) and/or a PEFT adapter.
    Export(export::ExportArgs),
    /// Score a model's answers to held-out records (exact match, token F1, ...); --compare puts the base model beside the fine-tuned one.
    Eval(eval::EvalArgs),
    /// Show a model's architecture, parameter counts and estimated training memory.
    Inspect(inspect::InspectArgs),
    /// Time training steps (tokens/s, forward/backward/optimizer, peak memory).
    Bench(bench::BenchArgs),
    /// Run the whole journey on the bundled demo model: generate, fine-tune, generate, export.
    Demo(demo::DemoArgs),
    /// Open the desktop app (the same as running wgtune with no subcommand).
    Gui,
}

pub fn main() -> ExitCode {
    runtime_dir::ensure_runtime_dir();
    let cli = Cli::parse();
    // A panic that escapes the engine's own guards still ends in an error message and exit
    // status 1, after the panic's report (for a bug report).
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match cli.command {
        Some(Command::Train(args)) => train::run(args),
        Some(Command::Generate(args)) => generate::run(args),
        Some(Command::Export(args)) => export::run(args),
        Some(Command::Eval(args)) => eval::run(args),
        Some(Command::Inspect(args)) => inspect::run(args),
        Some(Command::Bench(args)) => bench::run_bench(args),
        Some(Command::Demo(args)) => demo::run(args),
        Some(Command::Gui) | None => open_app(),
    }))
    .unwrap_or_else(|panic| Err(anyhow::anyhow!("internal error: {}", wgtune::error::panic_message(panic.as_ref()))));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(feature = "gui")]
fn open_app() -> anyhow::Result<()> {
    wgtune::gui::run_app()
}

#[cfg(not(feature = "gui"))]
fn open_app() -> anyhow::Result<()> {
    anyhow::bail!("this build of wgtune has no desktop app (built without the `gui` feature); see `wgtune --help`")
}
