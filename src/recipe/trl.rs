//! The run as TRL's `trl sft` configuration (`SFTConfig`, `ModelConfig` and `ScriptArguments`
//! in one YAML file, as `trl sft --config` and `sft.py --config` read it).

use serde_json::json;

use super::plan::Plan;
use super::records::Form;
use super::yaml::Entry;
use super::{DATA_DIR, OUTPUT_DIR};
use crate::method::Method;

pub fn entries(plan: &Plan, has_validation: bool) -> Vec<Entry> {
    let run = plan.run;
    let optim = &run.optim;
    let mut out = vec![
        Entry::new("model_name_or_path", plan.base.name.clone()),
        Entry::new("dtype", "bfloat16"),
        Entry::new("dataset_name", DATA_DIR).with_comment("train.jsonl and validation.jsonl, the split wgtune trained with"),
        Entry::new("dataset_train_split", "train"),
    ];
    if has_validation {
        out.push(Entry::new("dataset_test_split", "validation"));
    }
    match &run.method {
        Method::Lora(lora) => {
            out.extend([
                Entry::new("use_peft", true),
                Entry::new("lora_r", lora.rank),
                Entry::new("lora_alpha", lora.alpha),
                Entry::new("lora_dropout", lora.dropout),
                Entry::new("lora_target_modules", json!(plan.targets())),
                Entry::new("use_rslora", lora.rslora),
            ]);
            match run.base_quant.bits() {
                Some(4) => out.extend([Entry::new("load_in_4bit", true), Entry::new("bnb_4bit_quant_type", "nf4")]),
                Some(_) => out.push(Entry::new("load_in_8bit", true)),
                None => {}
            }
        }
        _ => {
            // Every weight trains: shard parameters, gradients and optimizer state over the
            // processes (FSDP, ZeRO-3's equivalent in PyTorch itself), one decoder layer a unit.
            out.push(Entry::new("fsdp", "full_shard auto_wrap"));
            out.push(Entry::new("fsdp_config", json!({ "transformer_layer_cls_to_wrap": [plan.decoder_layer()] })));
        }
    }
    // TRL's loss on completions is wgtune's on replies; its language modelling trains every token.
    let replies_only = matches!(plan.form, Form::Conversation | Form::PromptCompletion) && !run.data.train_on_prompt;
    out.push(Entry::new("completion_only_loss", replies_only).with_comment(if replies_only {
        "the loss on the replies alone, as wgtune trained"
    } else {
        "the loss on every token (--train-on-prompt, or raw text), as wgtune trained"
    }));
    out.extend([
        Entry::new("max_length", run.data.max_seq_len),
        Entry::new("packing", run.data.packing),
        Entry::new("per_device_train_batch_size", plan.micro_batch).with_comment(plan.batch_comment()),
        Entry::new("per_device_eval_batch_size", plan.micro_batch),
        Entry::new("gradient_accumulation_steps", plan.accumulation),
        Entry::new("learning_rate", optim.lr),
        Entry::new("lr_scheduler_type", plan.scheduler()),
        Entry::new("warmup_steps", plan.warmup()),
        Entry::new("optim", "adamw_torch"),
    ]);
    out.extend(plan.adamw_entries());
    match run.max_steps {
        Some(steps) => out.push(Entry::new("max_steps", steps)),
        None => out.push(Entry::new("num_train_epochs", run.epochs)),
    }
    out.extend([Entry::new("seed", run.seed), Entry::new("data_seed", run.seed), Entry::new("bf16", true)]);
    out.push(Entry::new("gradient_checkpointing", run.gradient_checkpointing));
    if has_validation && run.eval_every > 0 {
        out.extend([Entry::new("eval_strategy", "steps"), Entry::new("eval_steps", run.eval_every)]);
    } else {
        out.push(Entry::new("eval_strategy", "no"));
    }
    if run.save_every > 0 {
        out.extend([Entry::new("save_strategy", "steps"), Entry::new("save_steps", run.save_every)]);
    } else {
        // wgtune saves at the end alone; each epoch's checkpoint keeps the last one's
        // `trainer_state.json` (the loss curve wgtune reads back) within the same limit.
        out.push(Entry::new("save_strategy", "epoch"));
    }
    out.extend([
        Entry::new("save_total_limit", run.keep_checkpoints.max(1)),
        Entry::new("logging_steps", 1).with_comment("every step's loss in trainer_state.json, for wgtune's Runs tab"),
        Entry::new("output_dir", OUTPUT_DIR),
        Entry::new("report_to", "none"),
    ]);
    out
}
