//! `wgtune train`: flags (or `--config run.toml`) to a [`TrainConfig`], then the run with a
//! progress bar.

use std::path::PathBuf;
use std::sync::mpsc::channel;

use anyhow::{Context, Result};
use clap::Args;
use wgtune::data::{BadRecords, DatasetFormat, LongRecords};
use wgtune::device::DeviceChoice;
use wgtune::method::{LORA_TARGETS, LoraSettings, Method};
use wgtune::model::{BaseQuant, ModelFolder, Precision};
use wgtune::presets::Preset;
use wgtune::train::{ClassWeights, EventSink, RunStart, ScheduleKind, Task, TrainConfig, resume_config, train};

use super::progress::TrainProgress;

#[derive(Args, Debug, Default)]
pub struct TrainArgs {
    /// Read settings from this TOML file (the same format as RUN_DIR/run.toml); flags override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Continue the run in this directory from its newest checkpoint, with its saved settings.
    #[arg(long, value_name = "RUN_DIR", conflicts_with = "config")]
    pub resume: Option<PathBuf>,
    /// Start a new run in an --output directory that already holds one, deleting the earlier
    /// run's checkpoints, metrics and results (other files there are left alone).
    #[arg(long, conflicts_with = "resume")]
    pub overwrite: bool,

    /// Model: a Hugging Face folder, a .gguf file, ollama:NAME[:TAG] (an installed Ollama model), or a Hugging Face model id (owner/name: from the local cache, else downloaded into it).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// What to learn: causal-lm (continue text: replies, completions) or classification (a class per record: `text`, `label`, optional `text_pair`) [default: causal-lm].
    #[arg(long)]
    pub task: Option<Task>,
    /// With --task classification: none, or balanced (each class weighs examples / (classes × its examples) in the loss, for imbalanced labels) [default: none].
    #[arg(long)]
    pub class_weights: Option<ClassWeights>,
    /// Training data: JSONL, JSON, CSV or Parquet (alpaca, chat, sharegpt, prompt/completion or text records; text and label for classification), or a Hugging Face dataset id (owner/name: its Parquet split, see --split, --subset).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// With a Hugging Face dataset id in --data (or --validation): the split to train on [default: train].
    #[arg(long)]
    pub split: Option<String>,
    /// With a Hugging Face dataset id: its subset (configuration), the folder its Parquet files are under.
    #[arg(long)]
    pub subset: Option<String>,
    /// With a Hugging Face dataset id: the split to validate on, from --validation's dataset or else --data's [default: validation, when --validation is an id].
    #[arg(long)]
    pub validation_split: Option<String>,
    /// Validation data in the same shapes [default: none; see --validation-fraction].
    #[arg(long)]
    pub validation: Option<PathBuf>,
    /// Hold out this fraction of the training records for validation [default: 0].
    #[arg(long)]
    pub validation_fraction: Option<f64>,
    /// Record shape: alpaca, chat, sharegpt, prompt_completion, text [default: detected].
    #[arg(long)]
    pub format: Option<DatasetFormat>,
    /// Read columns of other names as the fields a shape needs, e.g. prompt=question,completion=answer or messages=conversation.
    #[arg(long, value_name = "FIELD=COLUMN,...")]
    pub columns: Option<String>,
    /// Longest sequence in tokens [default: 512].
    #[arg(long)]
    pub max_seq_len: Option<usize>,
    /// Compute the loss on every token, prompts included [default: off].
    #[arg(long)]
    pub train_on_prompt: bool,
    /// Pack short examples together into sequences of max-seq-len tokens [default: off].
    #[arg(long)]
    pub packing: bool,
    /// A record that cannot be read: skip (report it and go on) or stop [default: skip].
    #[arg(long, value_parser = parse_bad_records)]
    pub bad_records: Option<BadRecords>,
    /// A record longer than max-seq-len: truncate, skip or error [default: truncate].
    #[arg(long, value_parser = parse_long_records)]
    pub long_records: Option<LongRecords>,

    /// A starting point sized to the model and the dataset: quick (rank 8, 20 steps), balanced (rank 16, at least 3 epochs and 60 steps) or best (rank 32, at least 5 epochs and 150 steps, half the learning rate); the learning rate grows as the model shrinks. Other flags override it.
    #[arg(long)]
    pub preset: Option<Preset>,
    /// Fine-tuning method: lora, full, top-layers, modules [default: lora].
    #[arg(long)]
    pub method: Option<String>,
    /// LoRA rank [default: 16].
    #[arg(long)]
    pub rank: Option<usize>,
    /// LoRA alpha [default: 32].
    #[arg(long)]
    pub alpha: Option<f64>,
    /// LoRA dropout [default: 0.05].
    #[arg(long)]
    pub lora_dropout: Option<f64>,
    /// LoRA target modules, comma-separated [default: q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj].
    #[arg(long, value_delimiter = ',')]
    pub target_modules: Option<Vec<String>>,
    /// Scale LoRA by alpha/sqrt(rank) (rsLoRA) [default: off].
    #[arg(long)]
    pub rslora: bool,
    /// With --method top-layers: how many of the last decoder layers train [default: 2].
    #[arg(long)]
    pub top_layers: Option<usize>,
    /// With --method modules: parameter path components that train, comma-separated (e.g. norm,lm_head,layers.29).
    #[arg(long, value_delimiter = ',')]
    pub modules: Option<Vec<String>>,

    /// Peak learning rate [default: 2e-4].
    #[arg(long)]
    pub lr: Option<f64>,
    /// AdamW weight decay [default: 0].
    #[arg(long)]
    pub weight_decay: Option<f64>,
    /// AdamW beta1 [default: 0.9].
    #[arg(long)]
    pub beta1: Option<f64>,
    /// AdamW beta2 [default: 0.999].
    #[arg(long)]
    pub beta2: Option<f64>,
    /// AdamW epsilon [default: 1e-8].
    #[arg(long)]
    pub eps: Option<f64>,
    /// Clip the global gradient norm to this; 0 disables [default: 1.0].
    #[arg(long)]
    pub max_grad_norm: Option<f64>,
    /// Learning-rate schedule after warm-up: cosine, linear, constant [default: cosine].
    #[arg(long)]
    pub schedule: Option<ScheduleKind>,
    /// Warm-up steps [default: 0, meaning --warmup-ratio].
    #[arg(long)]
    pub warmup_steps: Option<usize>,
    /// Warm-up as a fraction of all steps [default: 0.03].
    #[arg(long)]
    pub warmup_ratio: Option<f64>,

    /// Sequences per micro-batch [default: 4].
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Micro-batches per optimizer step [default: 1].
    #[arg(long)]
    pub grad_accumulation: Option<usize>,
    /// Passes over the training data [default: 1].
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Stop after this many optimizer steps [default: none].
    #[arg(long)]
    pub max_steps: Option<usize>,
    /// Evaluate before training and every this many steps, 0 = only at the end [default: 0].
    #[arg(long)]
    pub eval_every: Option<usize>,
    /// At each evaluation, answer this many validation records greedily and score them against their replies (exact match, token F1); 0 = loss only [default: 4].
    #[arg(long)]
    pub eval_generations: Option<usize>,
    /// Checkpoint every this many steps, 0 = only at the end [default: 100].
    #[arg(long)]
    pub save_every: Option<usize>,
    /// Checkpoints to keep [default: 2].
    #[arg(long)]
    pub keep_checkpoints: Option<usize>,
    /// Random seed for initialisation, shuffling and dropout [default: 42].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Run directory for checkpoints, metrics and the result [default: runs/latest].
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// Keep only each decoder layer's input and recompute the layer in the backward pass: far less activation memory, about one more forward pass of time [default: off].
    #[arg(long)]
    pub gradient_checkpointing: bool,
    /// f16 runs the weight matrices' matmuls in half precision with a dynamic loss scale; LoRA also stores its frozen weights in f16, weights that train stay f32 masters. Needs a device with shader-f16 [default: f32].
    #[arg(long)]
    pub precision: Option<Precision>,
    /// LoRA over a frozen base packed in blocks of 32: int8 (about half the f16 memory of the decoder's projections) or int4 (0.29×, 4-bit numbers with an 8-bit scale and minimum per block under f16 ones per 256, GGUF's Q4_K scheme). On a GPU the embedding and output projection are packed too; on the CPU they stay dense [default: none].
    #[arg(long)]
    pub base_quant: Option<BaseQuant>,
    /// Where to train: auto (a hardware GPU through wgpu, else the CPU), wgpu (any adapter: Vulkan, Metal, DX12, GL) or cpu [default: auto].
    #[arg(long)]
    pub device: Option<DeviceChoice>,
    /// Print one line per step instead of a progress bar.
    #[arg(long)]
    pub plain: bool,
}

/// LoRA over a quantized GGUF (what Ollama and LM Studio hold) keeps its frozen base packed as the
/// file stores it, unless `--base-quant` (or a settings file) says otherwise, and says so.
fn keep_the_files_own_blocks(c: &mut TrainConfig) -> Result<()> {
    if c.method.lora().is_none() || c.model.as_os_str().is_empty() {
        return Ok(());
    }
    let folder = ModelFolder::open(&c.model)?;
    let native = folder.native_base_quant();
    if native != BaseQuant::None {
        c.base_quant = native;
        eprintln!(
            "frozen base: {native}, as {} stores it ({}); --base-quant none trains over dense weights",
            c.model.display(),
            folder.storage()
        );
    }
    Ok(())
}

fn parse_bad_records(s: &str) -> Result<BadRecords, String> {
    match s {
        "skip" => Ok(BadRecords::Skip),
        "stop" => Ok(BadRecords::Stop),
        other => Err(format!("`{other}`: expected skip or stop")),
    }
}

fn parse_long_records(s: &str) -> Result<LongRecords, String> {
    match s {
        "truncate" => Ok(LongRecords::Truncate),
        "skip" => Ok(LongRecords::Skip),
        "error" => Ok(LongRecords::Error),
        other => Err(format!("`{other}`: expected truncate, skip or error")),
    }
}

impl TrainArgs {
    /// The settings these flags describe, on top of `--config` (or the defaults).
    pub fn to_config(&self) -> Result<TrainConfig> {
        let mut c = match &self.config {
            Some(path) => TrainConfig::from_toml_file(path)?,
            None => TrainConfig::default(),
        };
        macro_rules! set {
            ($($flag:ident => $field:expr),* $(,)?) => {
                $(if let Some(v) = self.$flag.clone() { $field = v; })*
            };
        }
        if let Some(model) = &self.model {
            c.model = super::progress::resolve_model(model)?;
        }
        // A dataset id becomes the Parquet file of its split, downloaded unless cached.
        let subset = self.subset.as_deref();
        if let Some(data) = &self.data {
            c.data.train_file = super::progress::resolve_dataset(data, subset, self.split.as_deref().unwrap_or("train"))?;
        }
        let validation_split = self.validation_split.as_deref();
        match (&self.validation, &self.data) {
            (Some(validation), _) => {
                c.data.validation_file =
                    Some(super::progress::resolve_dataset(validation, subset, validation_split.unwrap_or("validation"))?);
            }
            (None, Some(data)) if validation_split.is_some() && wgtune::hub::is_hub_id(&data.to_string_lossy()) && !data.exists() => {
                c.data.validation_file = Some(super::progress::resolve_dataset(data, subset, validation_split.unwrap_or_default())?);
            }
            _ => {}
        }
        if let Some(preset) = self.preset {
            self.apply_preset(preset, &mut c)?;
        }
        set!(
            output => c.output_dir,
            task => c.task,
            class_weights => c.class_weights,
            device => c.device,
            precision => c.precision,
            base_quant => c.base_quant,
            seed => c.seed,
            batch_size => c.batch_size,
            grad_accumulation => c.grad_accumulation,
            epochs => c.epochs,
            eval_every => c.eval_every,
            eval_generations => c.eval_generations,
            save_every => c.save_every,
            keep_checkpoints => c.keep_checkpoints,
            validation_fraction => c.data.validation_fraction,
            max_seq_len => c.data.max_seq_len,
            bad_records => c.data.bad_records,
            long_records => c.data.long_records,
            lr => c.optim.lr,
            weight_decay => c.optim.weight_decay,
            beta1 => c.optim.beta1,
            beta2 => c.optim.beta2,
            eps => c.optim.eps,
            max_grad_norm => c.optim.max_grad_norm,
            schedule => c.optim.schedule,
            warmup_steps => c.optim.warmup_steps,
            warmup_ratio => c.optim.warmup_ratio,
        );
        if self.max_steps.is_some() {
            c.max_steps = self.max_steps;
        }
        if self.format.is_some() {
            c.data.format = self.format;
        }
        if let Some(columns) = &self.columns {
            c.data.columns = wgtune::data::columns::parse(columns)?;
        }
        c.data.train_on_prompt |= self.train_on_prompt;
        c.data.packing |= self.packing;
        c.gradient_checkpointing |= self.gradient_checkpointing;
        c.method = self.method(c.method)?;
        if self.base_quant.is_none() && self.config.is_none() {
            keep_the_files_own_blocks(&mut c)?;
        }
        Ok(c)
    }

    /// Applies `preset` for the chosen model and data, before the other flags.
    fn apply_preset(&self, preset: Preset, c: &mut TrainConfig) -> Result<()> {
        let data = &c.data.train_file;
        if c.model.as_os_str().is_empty() || data.as_os_str().is_empty() {
            anyhow::bail!("--preset sizes its settings to the model and the data: give --model and --data");
        }
        let parameters = ModelFolder::open(&c.model)?.config.num_parameters();
        let examples = wgtune::data::count_records(data, &c.data)?;
        if let Some(batch_size) = self.batch_size {
            c.batch_size = batch_size;
        }
        let s = preset.apply(c, parameters, examples);
        eprintln!("preset {preset}: rank {}, learning rate {:.1e}, {} epochs over {examples} records", s.rank, s.lr, s.epochs);
        Ok(())
    }

    fn method(&self, current: Method) -> Result<Method> {
        let kind = self.method.as_deref().map(|m| m.replace('_', "-"));
        let method = match kind.as_deref() {
            None => current,
            Some("lora") => match current {
                Method::Lora(l) => Method::Lora(l),
                _ => Method::Lora(LoraSettings::default()),
            },
            Some("full") => Method::Full,
            Some("top-layers") => Method::TopLayers { layers: self.top_layers.unwrap_or(2) },
            Some("modules") => {
                Method::Modules { names: self.modules.clone().context("--method modules needs --modules (e.g. norm,lm_head)")? }
            }
            Some(other) => anyhow::bail!("unknown --method `{other}` (lora, full, top-layers, modules)"),
        };
        Ok(match method {
            Method::Lora(mut lora) => {
                if let Some(r) = self.rank {
                    lora.rank = r;
                }
                if let Some(a) = self.alpha {
                    lora.alpha = a;
                }
                if let Some(d) = self.lora_dropout {
                    lora.dropout = d;
                }
                if let Some(t) = &self.target_modules {
                    lora.target_modules =
                        if t.iter().any(|m| m == "all-linear") { LORA_TARGETS.iter().map(|s| s.to_string()).collect() } else { t.clone() };
                }
                lora.rslora |= self.rslora;
                Method::Lora(lora)
            }
            Method::TopLayers { layers } => Method::TopLayers { layers: self.top_layers.unwrap_or(layers) },
            other => other,
        })
    }
}

pub fn run(args: TrainArgs) -> Result<()> {
    let (config, start) = match &args.resume {
        Some(dir) => {
            let mut config = resume_config(dir)?;
            if args.max_steps.is_some() {
                config.max_steps = args.max_steps;
            }
            (config, RunStart::Resume)
        }
        None => (args.to_config()?, if args.overwrite { RunStart::Overwrite } else { RunStart::New }),
    };
    let (events_tx, events_rx) = channel();
    let (_commands_tx, commands_rx) = channel();
    let progress = TrainProgress::spawn(events_rx, args.plain);
    let result = train(&config, start, &EventSink::new(events_tx), &commands_rx);
    progress.finish();
    let summary = result?;
    println!(
        "{} after {} steps; trained weights in {}",
        if summary.stopped_early { "Stopped" } else { "Finished" },
        summary.steps,
        summary.final_checkpoint.display()
    );
    Ok(())
}
