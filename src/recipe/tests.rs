//! The mapping of every wgtune setting into each target's configuration, pinned.

use std::path::{Path, PathBuf};

use serde_json::json;

use super::plan::{BaseModel, Plan};
use super::records::Form;
use super::yaml::{Entry, lookup};
use super::*;
use crate::method::{LoraSettings, Method};
use crate::model::{BaseQuant, ModelConfig, Precision};
use crate::train::{OptimizerConfig, ScheduleKind};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

fn model(name: &str) -> ModelConfig {
    let path = fixture(name).join("config.json");
    ModelConfig::from_json(&std::fs::read_to_string(&path).unwrap(), &path).unwrap()
}

/// A run with every setting away from its default.
fn run() -> TrainConfig {
    let mut run = TrainConfig {
        model: "HuggingFaceTB/SmolLM2-135M".into(),
        seed: 7,
        batch_size: 4,
        grad_accumulation: 2,
        epochs: 3,
        eval_every: 25,
        save_every: 50,
        keep_checkpoints: 3,
        gradient_checkpointing: true,
        precision: Precision::F16,
        method: Method::Lora(LoraSettings {
            rank: 8,
            alpha: 16.0,
            dropout: 0.1,
            target_modules: vec!["q_proj".into(), "v_proj".into(), "up_proj".into()],
            rslora: true,
        }),
        optim: OptimizerConfig {
            lr: 3e-4,
            beta1: 0.85,
            beta2: 0.99,
            eps: 1e-7,
            weight_decay: 0.01,
            max_grad_norm: 0.5,
            schedule: ScheduleKind::Linear,
            warmup_steps: 10,
            warmup_ratio: 0.0,
        },
        ..TrainConfig::default()
    };
    run.data.max_seq_len = 1024;
    run.data.packing = true;
    run
}

fn plan<'a>(run: &'a TrainConfig, model: &'a ModelConfig, form: Form, world_size: usize) -> Plan<'a> {
    let (micro_batch, accumulation) = split_batch(run, world_size).unwrap();
    Plan { run, model, base: BaseModel::of(&run.model), world_size, micro_batch, accumulation, form }
}

fn values(entries: &[Entry], keys: &[&str]) -> Vec<serde_json::Value> {
    keys.iter().map(|k| lookup(entries, k).cloned().unwrap_or_else(|| panic!("`{k}` is not set"))).collect()
}

#[test]
fn every_lora_setting_reaches_trl() {
    let (run, model) = (run(), model("tiny-llama"));
    let entries = trl::entries(&plan(&run, &model, Form::Conversation, 2), true);
    let keys = [
        "model_name_or_path",
        "dtype",
        "dataset_name",
        "dataset_train_split",
        "dataset_test_split",
        "use_peft",
        "lora_r",
        "lora_alpha",
        "lora_dropout",
        "lora_target_modules",
        "use_rslora",
        "completion_only_loss",
        "max_length",
        "packing",
        "per_device_train_batch_size",
        "gradient_accumulation_steps",
        "learning_rate",
        "lr_scheduler_type",
        "warmup_steps",
        "optim",
        "adam_beta1",
        "adam_beta2",
        "adam_epsilon",
        "weight_decay",
        "max_grad_norm",
        "num_train_epochs",
        "seed",
        "data_seed",
        "bf16",
        "gradient_checkpointing",
        "eval_strategy",
        "eval_steps",
        "save_strategy",
        "save_steps",
        "save_total_limit",
        "logging_steps",
        "output_dir",
    ];
    assert_eq!(
        values(&entries, &keys),
        [
            json!("HuggingFaceTB/SmolLM2-135M"),
            json!("bfloat16"),
            json!("data"),
            json!("train"),
            json!("validation"),
            json!(true),
            json!(8),
            json!(16.0),
            json!(0.1),
            json!(["q_proj", "v_proj", "up_proj"]),
            json!(true),
            json!(true),
            json!(1024),
            json!(true),
            // 4 × 2 = 8 sequences a step over 2 processes: 4 each, no accumulation.
            json!(4),
            json!(1),
            json!(3e-4),
            json!("linear"),
            json!(10),
            json!("adamw_torch"),
            json!(0.85),
            json!(0.99),
            json!(1e-7),
            json!(0.01),
            json!(0.5),
            json!(3),
            json!(7),
            json!(7),
            json!(true),
            json!(true),
            json!("steps"),
            json!(25),
            json!("steps"),
            json!(50),
            json!(3),
            json!(1),
            json!("output"),
        ]
    );
    assert!(lookup(&entries, "fsdp").is_none() && lookup(&entries, "load_in_4bit").is_none());
}

#[test]
fn trl_variants_max_steps_a_ratio_a_packed_base_and_full_fine_tuning() {
    let model = model("tiny-phi3");
    let mut lora = run();
    lora.max_steps = Some(200);
    lora.optim.warmup_steps = 0;
    lora.optim.warmup_ratio = 0.05;
    lora.optim.schedule = ScheduleKind::Constant;
    lora.base_quant = BaseQuant::Int4;
    lora.eval_every = 0;
    lora.data.train_on_prompt = true;
    let entries = trl::entries(&plan(&lora, &model, Form::Messages, 8), true);
    assert_eq!(
        values(&entries, &["max_steps", "warmup_steps", "lr_scheduler_type", "load_in_4bit", "bnb_4bit_quant_type", "eval_strategy"]),
        [json!(200), json!(0.05), json!("constant_with_warmup"), json!(true), json!("nf4"), json!("no")]
    );
    assert_eq!(values(&entries, &["per_device_train_batch_size", "gradient_accumulation_steps"]), [json!(1), json!(1)]);
    // Phi-3's fused projections under its own names; the loss on every token.
    assert_eq!(values(&entries, &["lora_target_modules", "completion_only_loss"]), [json!(["qkv_proj", "gate_up_proj"]), json!(false)]);
    assert!(lookup(&entries, "num_train_epochs").is_none());

    let full = TrainConfig { method: Method::Full, ..run() };
    let entries = trl::entries(&plan(&full, &model, Form::Conversation, 1), false);
    assert_eq!(
        values(&entries, &["fsdp", "fsdp_config", "eval_strategy"]),
        [json!("full_shard auto_wrap"), json!({ "transformer_layer_cls_to_wrap": ["Phi3DecoderLayer"] }), json!("no")]
    );
    assert!(lookup(&entries, "use_peft").is_none() && lookup(&entries, "dataset_test_split").is_none());
}

#[test]
fn every_lora_setting_reaches_axolotl() {
    let (run, model) = (run(), model("tiny-llama"));
    let entries = axolotl::entries(&plan(&run, &model, Form::Messages, 4), true);
    let keys = [
        "base_model",
        "datasets",
        "test_datasets",
        "train_on_inputs",
        "adapter",
        "lora_r",
        "lora_alpha",
        "lora_dropout",
        "lora_target_modules",
        "peft_use_rslora",
        "sequence_len",
        "sample_packing",
        "micro_batch_size",
        "gradient_accumulation_steps",
        "learning_rate",
        "lr_scheduler",
        "warmup_steps",
        "optimizer",
        "adam_beta1",
        "adam_beta2",
        "adam_epsilon",
        "weight_decay",
        "max_grad_norm",
        "num_epochs",
        "seed",
        "bf16",
        "gradient_checkpointing",
        "eval_steps",
        "save_steps",
        "save_total_limit",
        "output_dir",
    ];
    let chat = |file: &str| {
        json!([{ "path": format!("data/{file}"), "ds_type": "json", "split": "train", "type": "chat_template",
                 "field_messages": "messages", "roles_to_train": ["assistant"], "train_on_eos": "turn" }])
    };
    assert_eq!(
        values(&entries, &keys),
        [
            json!("HuggingFaceTB/SmolLM2-135M"),
            chat("train.jsonl"),
            chat("validation.jsonl"),
            json!(false),
            json!("lora"),
            json!(8),
            json!(16.0),
            json!(0.1),
            json!(["q_proj", "v_proj", "up_proj"]),
            json!(true),
            json!(1024),
            json!(true),
            // 8 sequences a step over 4 processes: 2 each.
            json!(2),
            json!(1),
            json!(3e-4),
            json!("linear"),
            json!(10),
            json!("adamw_torch"),
            json!(0.85),
            json!(0.99),
            json!(1e-7),
            json!(0.01),
            json!(0.5),
            json!(3),
            json!(7),
            json!("auto"),
            json!(true),
            json!(25),
            json!(50),
            json!(3),
            json!("./output"),
        ]
    );
}

#[test]
fn axolotl_variants_completions_a_packed_base_and_full_fine_tuning() {
    let model = model("tiny-llama");
    let mut lora = run();
    lora.base_quant = BaseQuant::Int8;
    let entries = axolotl::entries(&plan(&lora, &model, Form::PromptCompletion, 1), false);
    assert_eq!(values(&entries, &["adapter", "load_in_8bit"]), [json!("qlora"), json!(true)]);
    assert_eq!(
        lookup(&entries, "datasets").unwrap()[0]["type"],
        json!({ "field_instruction": "prompt", "field_output": "completion", "format": "{instruction}", "no_input_format": "{instruction}" })
    );
    assert!(lookup(&entries, "test_datasets").is_none() && lookup(&entries, "eval_steps").is_none());

    let full = TrainConfig { method: Method::Full, ..run() };
    let entries = axolotl::entries(&plan(&full, &model, Form::Text, 2), true);
    assert_eq!(values(&entries, &["deepspeed"]), [json!("ds_zero3.json")]);
    assert_eq!(lookup(&entries, "datasets").unwrap()[0]["type"], json!("completion"));
    assert!(lookup(&entries, "adapter").is_none());
}

#[test]
fn a_recipe_folder_has_the_records_of_the_split_the_config_and_a_launcher() {
    let dir = tempfile::tempdir().unwrap();
    let mut run = TrainConfig { model: fixture("tiny-llama"), batch_size: 2, ..TrainConfig::default() };
    run.data.train_file = fixture("data/chat.jsonl");
    run.data.validation_fraction = 0.25;
    let out = dir.path().join("recipe");
    let summary = write_recipe(&run, RecipeTarget::Trl, 2, &out, false).unwrap();
    assert_eq!((summary.micro_batch, summary.accumulation), (1, 1));

    // The engine's own split of the same file: as many records on each side.
    let tokenizer = ModelFolder::open(&run.model).unwrap().tokenizer().unwrap();
    let dataset = Dataset::load(&run.data, &tokenizer, run.seed).unwrap();
    let lines = |file: &str| std::fs::read_to_string(out.join("data").join(file)).unwrap().lines().count();
    assert!(!dataset.validation.is_empty());
    assert_eq!(summary.form, Form::Conversation);
    assert!(lines("train.jsonl") >= dataset.train.len() && lines("validation.jsonl") >= dataset.validation.len());
    let first: serde_json::Value =
        serde_json::from_str(std::fs::read_to_string(out.join("data/train.jsonl")).unwrap().lines().next().unwrap()).unwrap();
    assert_eq!(first["completion"][0]["role"], "assistant", "{first}");

    let config = std::fs::read_to_string(out.join("trl.yaml")).unwrap();
    assert!(config.contains(&format!("model_name_or_path: \"{}\"", fixture("tiny-llama").display())), "{config}");
    let readme = std::fs::read_to_string(out.join("README.md")).unwrap();
    assert!(readme.contains("copy it to every node") && readme.contains("| `lora_r` | `16` |"), "{readme}");
    let script = std::fs::read_to_string(out.join("launch.sh")).unwrap();
    assert!(script.contains("WORLD_SIZE=2") && script.contains("--config trl.yaml"), "{script}");

    // What the user has is kept unless asked.
    let err = write_recipe(&run, RecipeTarget::Axolotl, 2, &out, false).unwrap_err().to_string();
    assert!(err.contains("exists and is not empty") && err.contains("--overwrite"), "{err}");
    write_recipe(&run, RecipeTarget::Axolotl, 2, &out, true).unwrap();
    assert!(out.join("axolotl.yaml").exists() && !out.join("trl.yaml").exists());

    let classifier = TrainConfig { task: crate::train::Task::Classification, ..run.clone() };
    let err = write_recipe(&classifier, RecipeTarget::Trl, 2, &dir.path().join("c"), false).unwrap_err().to_string();
    assert!(err.starts_with("invalid setting `task`: a classification run"), "{err}");
}
