//! A model loaded for use outside training: generation, export, the GUI playground.

use std::path::{Path, PathBuf};

use crate::classify::{LabelSet, classify_text};
use crate::device::{ComputeDevice, DeviceChoice};
use crate::error::{Error, Result};
use crate::export::export_merged;
use crate::generate::{ChatReply, GenerationSettings, generate_text};
use crate::gguf::GgmlType;
use crate::method::{LoraSettings, Method};
use crate::model::{CausalLm, ModelFolder, WeightDtype};
use crate::peft;
use crate::tokenizer::{Message, TextTokenizer};
use crate::train::{FINAL_DIR, checkpoint};

pub struct LoadedModel {
    pub folder: ModelFolder,
    pub tokenizer: TextTokenizer,
    pub device: ComputeDevice,
    pub model: CausalLm,
    /// The adapter's settings when one is attached.
    pub lora: Option<LoraSettings>,
    /// Where the trained weights came from, if any.
    pub trained_from: Option<PathBuf>,
}

impl LoadedModel {
    pub fn load(model_dir: &Path, device: DeviceChoice) -> Result<Self> {
        let folder = ModelFolder::open(model_dir)?;
        let tokenizer = folder.tokenizer()?;
        let device = ComputeDevice::open(device)?;
        let model = folder.load(&device.device)?;
        Ok(Self { folder, tokenizer, device, model, lora: None, trained_from: None })
    }

    /// Applies trained weights: a PEFT adapter folder, a checkpoint or `final` folder of a
    /// full or partial run, or a run directory (its `final` folder, else its newest checkpoint).
    pub fn with_trained(mut self, path: &Path) -> Result<Self> {
        let dir = resolve_trained(path)?;
        if let Some((labels, pad)) = classes_of(&dir)? {
            if self.model.score.is_some() {
                return Err(Error::invalid_file(&dir, "a classifier trained from a model that is a classifier already is not supported"));
            }
            let pad = pad.unwrap_or(self.tokenizer.pad_token_id);
            self.model = self.model.into_classifier(labels, pad);
        }
        if dir.join(peft::CONFIG_FILE).exists() {
            let (model, settings) = peft::load_adapter(self.model, &dir)?;
            self.model = model;
            self.lora = Some(settings);
        } else {
            let model = Method::Full.apply(self.model)?;
            self.model = checkpoint::load_weights(model, &Method::Full, &dir)?;
        }
        self.trained_from = Some(dir);
        Ok(self)
    }

    pub fn generate(&self, prompt: &str, settings: &GenerationSettings) -> Result<String> {
        generate_text(&self.model, &self.tokenizer, prompt, settings)
    }

    /// A classifier's classes for `text`, most probable first, with their probabilities.
    pub fn classify(&self, text: &str) -> Result<Vec<(String, f32)>> {
        classify_text(&self.model, &self.tokenizer, text)
    }

    /// The model's next turn in `messages` (see [`crate::generate::reply`]), the reply so far
    /// handed to `on_text` as it grows.
    pub fn reply(&self, messages: &[Message], settings: &GenerationSettings, on_text: impl FnMut(&str) -> bool) -> Result<ChatReply> {
        crate::generate::reply(&self.model, &self.tokenizer, messages, settings, on_text)
    }

    /// Writes merged weights into `out`: a folder that does not exist or is empty, or with
    /// `overwrite` one to replace, never the model or trained weights this reads from.
    pub fn export_merged(&self, out: &Path, dtype: Option<WeightDtype>, overwrite: bool, progress: impl FnMut(usize, usize)) -> Result<()> {
        self.check_export_target(out, overwrite)?;
        export_merged(&self.model, &self.folder, out, dtype, progress)
    }

    /// Writes the attached adapter in PEFT format into `out` (the same rules as
    /// [`Self::export_merged`]).
    pub fn export_adapter(&self, out: &Path, overwrite: bool) -> Result<()> {
        self.check_export_target(out, overwrite)?;
        let settings = self.adapter_settings()?;
        let staging = crate::fsutil::Staging::new(out)?;
        peft::save_adapter(&self.model, settings, &self.folder.path.display().to_string(), staging.path())?;
        staging.publish()
    }

    /// Writes merged weights as a GGUF file for llama.cpp (the same rules as
    /// [`Self::export_merged`], for a file).
    pub fn export_gguf(&self, out: &Path, ggml_type: GgmlType, overwrite: bool, progress: impl FnMut(usize, usize)) -> Result<()> {
        self.check_language_model("GGUF")?;
        self.check_file_target(out, overwrite)?;
        crate::gguf::export_gguf(&self.model, &self.folder, out, ggml_type, progress)
    }

    /// Writes the attached adapter as llama.cpp's LoRA adapter GGUF.
    pub fn export_gguf_adapter(&self, out: &Path, overwrite: bool) -> Result<()> {
        self.check_language_model("GGUF")?;
        self.check_file_target(out, overwrite)?;
        let settings = self.adapter_settings()?;
        crate::gguf::export_gguf_adapter(&self.model, settings, &self.folder, out)
    }

    /// Writes `out/model.gguf` (merged, in `ggml_type`) and an Ollama `Modelfile` for it, ready
    /// for `ollama create NAME -f out/Modelfile`.
    pub fn export_ollama(&self, out: &Path, ggml_type: GgmlType, overwrite: bool, progress: impl FnMut(usize, usize)) -> Result<()> {
        self.check_language_model("Ollama")?;
        self.check_export_target(out, overwrite)?;
        let staging = crate::fsutil::Staging::new(out)?;
        crate::gguf::export_gguf(&self.model, &self.folder, &staging.join("model.gguf"), ggml_type, progress)?;
        let stops: Vec<String> = self.tokenizer.eos_token_ids.iter().filter_map(|id| self.tokenizer.token_text(*id)).collect();
        let text = crate::gguf::modelfile("./model.gguf", None, self.tokenizer.chat_template(), &stops);
        crate::fsutil::write_atomic(&staging.join("Modelfile"), text.as_bytes())?;
        staging.publish()
    }

    /// llama.cpp and Ollama run language models of the architectures the GGUF writer knows; a
    /// classifier's `score` head has no place there.
    fn check_language_model(&self, format: &str) -> Result<()> {
        crate::gguf::gguf_architecture(&self.model.config)?;
        match &self.model.config.labels {
            Some(_) => Err(Error::setting(
                "export",
                format!("this is a classifier; {format} holds language models: export a Hugging Face folder (--merged) or a PEFT adapter"),
            )),
            None => Ok(()),
        }
    }

    /// The attached adapter's settings, or an error saying there is none.
    fn adapter_settings(&self) -> Result<&LoraSettings> {
        self.lora
            .as_ref()
            .ok_or_else(|| Error::setting("adapter", "no LoRA adapter is attached (full and partial runs export merged weights)"))
    }

    /// What an export reads from and must never write into: the model and the trained weights.
    fn sources(&self) -> Vec<&Path> {
        std::iter::once(self.folder.path.as_path()).chain(self.trained_from.as_deref()).collect()
    }

    /// Refuses a file target that would replace the user's file or what this model reads.
    fn check_file_target(&self, out: &Path, overwrite: bool) -> Result<()> {
        crate::fsutil::check_file_target(out, &self.sources(), overwrite, "--overwrite")
    }

    /// Refuses an export target that would replace the user's files or what this model reads.
    fn check_export_target(&self, out: &Path, overwrite: bool) -> Result<()> {
        crate::fsutil::check_target(out, &self.sources(), overwrite, "--overwrite")
    }
}

/// The classes of trained weights (a run, a checkpoint or an adapter), `None` for a language model.
pub fn trained_labels(path: &Path) -> Result<Option<LabelSet>> {
    Ok(classes_of(&resolve_trained(path)?)?.map(|(labels, _)| labels))
}

/// The classes in a trained folder's `labels.json` with the padding id they were trained with;
/// for a PEFT `SEQ_CLS` adapter written elsewhere, transformers' default names (`LABEL_0`, …)
/// for as many classes as its head has, and no padding id.
fn classes_of(dir: &Path) -> Result<Option<(LabelSet, Option<u32>)>> {
    if let Some((labels, pad)) = LabelSet::load(dir)? {
        return Ok(Some((labels, Some(pad))));
    }
    let classes = peft::saved_head_classes(dir)?;
    Ok(classes.map(|n| (LabelSet { names: (0..n).map(|i| format!("LABEL_{i}")).collect() }, None)))
}

fn resolve_trained(path: &Path) -> Result<PathBuf> {
    let has_weights = |d: &Path| d.join(peft::CONFIG_FILE).exists() || d.join(checkpoint::TRAINABLE_FILE).exists();
    if has_weights(path) {
        return Ok(path.to_path_buf());
    }
    let final_dir = path.join(FINAL_DIR);
    if has_weights(&final_dir) {
        return Ok(final_dir);
    }
    // A trainer's output brought back from a cluster (or the recipe folder holding it).
    let imported = || crate::train::trainer_weights(path).filter(|d| has_weights(d));
    checkpoint::latest(path).or_else(imported).ok_or_else(|| {
        if path.join("config.json").is_file() {
            // A full fine-tuning's output from TRL or Axolotl is a model of its own.
            Error::invalid_file(path, "is a whole model folder, not trained weights for another model: pass it as --model")
        } else {
            Error::invalid_file(path, "no adapter_config.json, trainable.safetensors, final/ or checkpoint-* here")
        }
    })
}
