//! `wgtune generate`: one prompt in, the model's reply out.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use wgtune::device::DeviceChoice;
use wgtune::generate::GenerationSettings;
use wgtune::session::LoadedModel;

#[derive(Args, Debug)]
pub struct GenerateArgs {
    /// Model: a Hugging Face folder, a .gguf file, ollama:NAME[:TAG] (an installed Ollama model), or a Hugging Face model id (owner/name: from the local cache, else downloaded into it).
    #[arg(long)]
    pub model: PathBuf,
    /// Trained weights: a PEFT adapter folder, a run directory, or one of its checkpoints [default: none].
    #[arg(long, visible_alias = "adapter")]
    pub trained: Option<PathBuf>,
    /// The prompt (for a classifier: the text to classify).
    #[arg(long)]
    pub prompt: String,
    /// Most tokens to generate.
    #[arg(long, default_value_t = 64)]
    pub max_new_tokens: usize,
    /// Sampling temperature; 0 is greedy.
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f64,
    /// Nucleus sampling: keep the most likely tokens up to this probability.
    #[arg(long, default_value_t = 1.0)]
    pub top_p: f64,
    /// Seed for sampling.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Use the prompt as raw text instead of a user turn of the chat template.
    #[arg(long)]
    pub no_chat_template: bool,
    /// Where to run: auto (a hardware GPU, else the CPU), wgpu or cpu.
    #[arg(long, default_value_t = DeviceChoice::Auto)]
    pub device: DeviceChoice,
}

pub fn run(args: GenerateArgs) -> Result<()> {
    let model_dir = super::progress::resolve_model(&args.model)?;
    let mut model = LoadedModel::load(&model_dir, args.device)?;
    if let Some(trained) = &args.trained {
        model = model.with_trained(trained)?;
    }
    let settings = GenerationSettings {
        max_new_tokens: args.max_new_tokens,
        temperature: args.temperature,
        top_p: args.top_p,
        seed: args.seed,
        chat_template: !args.no_chat_template,
    };
    match model.model.num_labels() {
        Some(_) => {
            for (label, probability) in model.classify(&args.prompt)? {
                println!("{:>6.1} %  {label}", 100.0 * probability);
            }
        }
        None => println!("{}", model.generate(&args.prompt, &settings)?),
    }
    Ok(())
}
