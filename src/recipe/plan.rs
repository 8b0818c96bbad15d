//! What a recipe sets, decided once from the run's settings: the base model's name, the batch
//! split over the processes, the LoRA targets under the family's names, and the settings the
//! target has no way to express.

use std::path::Path;

use crate::error::{Error, Result};
use crate::method::{Method, resolve_targets};
use crate::model::{Architecture, ModelConfig};
use crate::train::{ScheduleKind, Task, TrainConfig};

use super::records::Form;
use super::yaml::Entry;

/// Everything a target's configuration is written from.
pub struct Plan<'a> {
    pub run: &'a TrainConfig,
    pub model: &'a ModelConfig,
    pub base: BaseModel,
    pub world_size: usize,
    /// Sequences per process per micro-batch, and micro-batches per optimizer step: together
    /// with the world size, wgtune's batch × accumulation.
    pub micro_batch: usize,
    pub accumulation: usize,
    /// The shape the records are written in.
    pub form: Form,
}

/// The model the target loads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BaseModel {
    /// A Hub id, or the local path.
    pub name: String,
    /// Why a local path was written, for the README.
    pub note: Option<String>,
}

impl BaseModel {
    /// The Hub id a run's model came from, when it came from the Hub (given as an id, or a
    /// snapshot of the Hub cache), else its path with a note.
    pub fn of(model: &Path) -> Self {
        let text = model.to_string_lossy();
        if !model.exists() && crate::hub::is_hub_id(&text) {
            return Self { name: text.into_owned(), note: None };
        }
        let cached =
            model.ancestors().find_map(|dir| dir.file_name()?.to_str()?.strip_prefix("models--").map(|n| n.replacen("--", "/", 1)));
        if let Some(id) = cached {
            return Self { name: id, note: None };
        }
        let gguf = model.extension().is_some_and(|e| e.eq_ignore_ascii_case("gguf"));
        let note = if gguf {
            "the base is a GGUF file, which TRL and Axolotl do not train from: put the Hub id of the model it was converted from here"
        } else {
            "the base is a local folder: copy it to every node at this path, or put its Hub id here"
        };
        Self { name: model.display().to_string(), note: Some(note.into()) }
    }
}

/// The batch per process and the accumulation that give `world_size` processes wgtune's global
/// batch (`batch_size × grad_accumulation` sequences per optimizer step); an error naming
/// `--world-size` where the global batch does not split evenly.
pub fn split_batch(run: &TrainConfig, world_size: usize) -> Result<(usize, usize)> {
    let global = run.batch_size * run.grad_accumulation;
    if world_size == 0 || !global.is_multiple_of(world_size) {
        let fitting: Vec<String> = (1..=global).filter(|n| global.is_multiple_of(*n)).map(|n| n.to_string()).collect();
        return Err(Error::setting(
            "world_size",
            format!(
                "the run's global batch of {global} sequences (batch size {} × accumulation {}) does not split over {world_size} processes; \
                 choose a world size among {}, or change --batch-size or --grad-accumulation",
                run.batch_size,
                run.grad_accumulation,
                fitting.join(", ")
            ),
        ));
    }
    let per_process = global / world_size;
    let micro = (1..=run.batch_size.min(per_process)).rev().find(|m| per_process.is_multiple_of(*m)).unwrap_or(1);
    Ok((micro, per_process / micro))
}

/// Refuses what the targets' supervised fine-tuning cannot train, with the reason.
pub fn check_supported(run: &TrainConfig) -> Result<()> {
    if run.task == Task::Classification {
        return Err(Error::setting(
            "task",
            "a classification run trains a `score` head with transformers' sequence-classification models, which TRL's SFT \
             trainer and Axolotl's do not set up; train it with wgtune, or with transformers' Trainer and \
             AutoModelForSequenceClassification",
        ));
    }
    match &run.method {
        Method::Lora(_) | Method::Full => Ok(()),
        other => Err(Error::setting(
            "method",
            format!("`{}` (training some layers whole) has no setting in TRL or Axolotl; export a lora or full run", other.name()),
        )),
    }
}

impl Plan<'_> {
    /// LoRA's target modules under the family's own names (Phi-3's `qkv_proj`, `gate_up_proj`).
    pub fn targets(&self) -> Vec<String> {
        self.run.method.lora().map(|l| resolve_targets(&l.target_modules, self.model)).unwrap_or_default()
    }

    /// The transformers class of one decoder layer, which FSDP wraps as a unit.
    pub fn decoder_layer(&self) -> &'static str {
        match self.model.architecture {
            Architecture::Llama => "LlamaDecoderLayer",
            Architecture::Mistral => "MistralDecoderLayer",
            Architecture::Qwen2 => "Qwen2DecoderLayer",
            Architecture::Qwen3 => "Qwen3DecoderLayer",
            Architecture::SmolLm3 => "SmolLM3DecoderLayer",
            Architecture::Gemma2 => "Gemma2DecoderLayer",
            Architecture::Gemma3 => "Gemma3DecoderLayer",
            Architecture::Phi3 => "Phi3DecoderLayer",
        }
    }

    /// The learning-rate schedule under transformers' name: wgtune's constant schedule keeps its
    /// warm-up.
    pub fn scheduler(&self) -> &'static str {
        match self.run.optim.schedule {
            ScheduleKind::Cosine => "cosine",
            ScheduleKind::Linear => "linear",
            ScheduleKind::Constant => "constant_with_warmup",
        }
    }

    /// The comment on a target's batch size: how it makes wgtune's batch of an optimizer step.
    pub fn batch_comment(&self) -> String {
        format!(
            "× gradient_accumulation_steps × {} processes = wgtune's {} sequences a step",
            self.world_size,
            self.run.batch_size * self.run.grad_accumulation
        )
    }

    /// AdamW's settings and the gradient clipping, under the names transformers' training
    /// arguments and Axolotl share.
    pub fn adamw_entries(&self) -> [Entry; 5] {
        let optim = &self.run.optim;
        [
            Entry::new("adam_beta1", optim.beta1),
            Entry::new("adam_beta2", optim.beta2),
            Entry::new("adam_epsilon", optim.eps),
            Entry::new("weight_decay", optim.weight_decay),
            Entry::new("max_grad_norm", optim.max_grad_norm),
        ]
    }

    /// Warm-up as transformers 5 takes it: whole steps, or a fraction of all steps below 1.
    pub fn warmup(&self) -> serde_json::Value {
        let optim = &self.run.optim;
        if optim.warmup_steps > 0 { optim.warmup_steps.into() } else { optim.warmup_ratio.into() }
    }

    /// The settings of the run that the target does not take, each with what happens instead.
    pub fn unsupported(&self) -> Vec<(&'static str, String)> {
        let run = self.run;
        let mut out =
            vec![("precision", format!("wgtune trained in {} on a laptop; the recipe computes in bf16, as GPUs train", run.precision))];
        if run.eval_every == 0 {
            out.push((
                "eval_every = 0",
                "wgtune evaluates at the end; the recipe does not evaluate (run `wgtune eval` on its result)".into(),
            ));
        }
        if run.save_every == 0 {
            out.push(("save_every = 0", "wgtune saves at the end alone; the recipe saves each epoch, keeping the newest".into()));
        }
        if run.eval_generations > 0 {
            out.push(("eval_generations", "answers scored against the replies: run `wgtune eval --compare` on the result".into()));
        }
        if let Some(bits) = run.base_quant.bits().filter(|_| run.method.lora().is_some()) {
            let kind = if bits == 4 { "4-bit NF4 (bitsandbytes)" } else { "8-bit (bitsandbytes)" };
            out.push(("base_quant", format!("wgtune's int{bits} blocks become {kind}, the quantization the targets use")));
        }
        if run.data.packing {
            out.push(("packing", "packed by the target's own packer: the same records, other boundaries between sequences".into()));
        }
        if self.form == Form::Conversation {
            out.push((
                "several replies per conversation",
                "one record per assistant turn, each with the turns before it as its prompt: the same replies trained, each once".into(),
            ));
        }
        out.push(("device, fused_kernels, materialize_lora", "how wgtune computes on a laptop; nothing to carry over".into()));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_global_batch_splits_over_the_processes_or_names_the_sizes_that_fit() {
        let run = |batch_size, grad_accumulation| TrainConfig { batch_size, grad_accumulation, ..TrainConfig::default() };
        assert_eq!(split_batch(&run(4, 1), 1).unwrap(), (4, 1));
        assert_eq!(split_batch(&run(4, 1), 2).unwrap(), (2, 1));
        assert_eq!(split_batch(&run(4, 4), 8).unwrap(), (2, 1));
        assert_eq!(split_batch(&run(8, 4), 2).unwrap(), (8, 2));
        assert_eq!(split_batch(&run(3, 4), 4).unwrap(), (3, 1));
        let err = split_batch(&run(4, 1), 3).unwrap_err().to_string();
        assert_eq!(
            err,
            "invalid setting `world_size`: the run's global batch of 4 sequences (batch size 4 × accumulation 1) does not split over 3 \
             processes; choose a world size among 1, 2, 4, or change --batch-size or --grad-accumulation"
        );
    }

    #[test]
    fn the_base_is_named_by_its_hub_id_where_it_has_one() {
        assert_eq!(
            BaseModel::of(Path::new("HuggingFaceTB/SmolLM2-135M")),
            BaseModel { name: "HuggingFaceTB/SmolLM2-135M".into(), note: None }
        );
        let cached = Path::new("/home/me/.cache/huggingface/hub/models--Qwen--Qwen2.5-0.5B/snapshots/abc123");
        assert_eq!(BaseModel::of(cached).name, "Qwen/Qwen2.5-0.5B");
        let local = BaseModel::of(Path::new("/tmp/my-model"));
        assert_eq!(local.name, "/tmp/my-model");
        assert!(local.note.unwrap().contains("copy it to every node"));
        assert!(BaseModel::of(Path::new("/tmp/m.gguf")).note.unwrap().contains("GGUF"));
    }
}
