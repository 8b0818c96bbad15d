//! The run as an Axolotl configuration (`axolotl train recipe.yml`).

use serde_json::{Value, json};

use super::plan::Plan;
use super::records::Form;
use super::yaml::Entry;
use super::{DATA_DIR, OUTPUT_DIR};
use crate::method::Method;

/// DeepSpeed's ZeRO-3 settings for a full fine-tuning recipe, written beside the configuration.
pub const ZERO3_FILE: &str = "ds_zero3.json";

pub fn entries(plan: &Plan, has_validation: bool) -> Vec<Entry> {
    let run = plan.run;
    let optim = &run.optim;
    let dataset = |file: &str| {
        let mut d = json!({ "path": format!("{DATA_DIR}/{file}"), "ds_type": "json", "split": "train" });
        let fields = match plan.form {
            Form::Messages | Form::Conversation => {
                let roles = if run.data.train_on_prompt { json!(["system", "user", "assistant"]) } else { json!(["assistant"]) };
                json!({ "type": "chat_template", "field_messages": "messages", "roles_to_train": roles, "train_on_eos": "turn" })
            }
            Form::PromptCompletion => json!({
                "type": { "field_instruction": "prompt", "field_output": "completion", "format": "{instruction}", "no_input_format": "{instruction}" }
            }),
            Form::Text => json!({ "type": "completion", "field": "text" }),
        };
        if let (Value::Object(d), Value::Object(fields)) = (&mut d, fields) {
            d.extend(fields);
        }
        d
    };
    let mut out = vec![Entry::new("base_model", plan.base.name.clone())];
    out.push(Entry::new("datasets", json!([dataset("train.jsonl")])).with_comment("the split wgtune trained with"));
    if has_validation {
        out.push(Entry::new("test_datasets", json!([dataset("validation.jsonl")])));
    }
    out.push(Entry::new("train_on_inputs", run.data.train_on_prompt));
    match &run.method {
        Method::Lora(lora) => {
            let adapter = if run.base_quant.bits().is_some() { "qlora" } else { "lora" };
            out.push(Entry::new("adapter", adapter));
            match run.base_quant.bits() {
                Some(4) => out.push(Entry::new("load_in_4bit", true)),
                Some(_) => out.push(Entry::new("load_in_8bit", true)),
                None => {}
            }
            out.extend([
                Entry::new("lora_r", lora.rank),
                Entry::new("lora_alpha", lora.alpha),
                Entry::new("lora_dropout", lora.dropout),
                Entry::new("lora_target_modules", json!(plan.targets())),
                Entry::new("peft_use_rslora", lora.rslora),
            ]);
        }
        _ => out.push(Entry::new("deepspeed", ZERO3_FILE).with_comment("every weight trains: ZeRO-3 shards them over the processes")),
    }
    out.extend([
        Entry::new("sequence_len", run.data.max_seq_len),
        Entry::new("sample_packing", run.data.packing),
        Entry::new("micro_batch_size", plan.micro_batch).with_comment(plan.batch_comment()),
        Entry::new("gradient_accumulation_steps", plan.accumulation),
        Entry::new("learning_rate", optim.lr),
        Entry::new("lr_scheduler", plan.scheduler()),
    ]);
    if optim.warmup_steps > 0 {
        out.push(Entry::new("warmup_steps", optim.warmup_steps));
    } else {
        out.push(Entry::new("warmup_ratio", optim.warmup_ratio));
    }
    out.extend([Entry::new("optimizer", "adamw_torch")]);
    out.extend(plan.adamw_entries());
    match run.max_steps {
        Some(steps) => out.push(Entry::new("max_steps", steps)),
        None => out.push(Entry::new("num_epochs", run.epochs)),
    }
    out.extend([
        Entry::new("seed", run.seed),
        Entry::new("bf16", "auto"),
        Entry::new("gradient_checkpointing", run.gradient_checkpointing),
    ]);
    if has_validation && run.eval_every > 0 {
        out.push(Entry::new("eval_steps", run.eval_every));
    }
    if run.save_every > 0 {
        out.push(Entry::new("save_steps", run.save_every));
    } else {
        out.push(Entry::new("saves_per_epoch", 1));
    }
    out.extend([
        Entry::new("save_total_limit", run.keep_checkpoints.max(1)),
        Entry::new("logging_steps", 1),
        Entry::new("output_dir", format!("./{OUTPUT_DIR}")),
    ]);
    out
}

/// DeepSpeed ZeRO-3 with "auto" sizes, which the Hugging Face integration fills from the
/// training arguments.
pub fn zero3() -> Value {
    json!({
        "zero_optimization": {
            "stage": 3,
            "overlap_comm": true,
            "contiguous_gradients": true,
            "stage3_gather_16bit_weights_on_model_save": true
        },
        "bf16": { "enabled": "auto" },
        "gradient_accumulation_steps": "auto",
        "gradient_clipping": "auto",
        "train_batch_size": "auto",
        "train_micro_batch_size_per_gpu": "auto"
    })
}
