//! Exporting a fine-tuned model as a Hugging Face folder: the source's tensor names, shapes,
//! shard layout and dtype (or a chosen one), with its config, tokenizer and generation files.
//!
//! Tensors the fine-tuning did not touch are copied byte for byte from the source; those it did
//! (adapted or trained) are read back from the device, merged, and encoded in the target dtype.
//! A model read from GGUF becomes one `model.safetensors` (f32, f16 as stored, bf16 for quantized
//! types, or `--dtype`) with a `config.json` and tokenizer files rebuilt from its metadata.

use std::collections::HashMap;
use std::path::Path;

use crate::error::{Error, Result};
use crate::fsutil;
use crate::gguf::GgufModel;
use crate::model::weights::{TensorSpec, write_safetensors};
use crate::model::{
    CausalLm, ModelConfig, ModelFolder, ModelWeights, RopeScaling, WeightDtype, WeightFiles, hf_name, is_transposed, transpose,
};
use crate::params::{NamedParam, named_parameters};

/// Files of a model folder that describe rather than hold weights, copied as they are.
fn is_weight_file(name: &str) -> bool {
    [".safetensors", ".bin", ".pt", ".pth", ".gguf", ".ckpt", ".h5", ".msgpack"].iter().any(|ext| name.ends_with(ext))
        || name.ends_with(".index.json")
}

/// Writes `model` with its adapters merged into `out`, mirroring `source`. `dtype` overrides the
/// stored dtype. `progress(done, total)` is called after each tensor.
pub fn export_merged(
    model: &CausalLm,
    source: &ModelFolder,
    out: &Path,
    dtype: Option<WeightDtype>,
    progress: impl FnMut(usize, usize),
) -> Result<()> {
    let staging = fsutil::Staging::new(out)?;
    let merged = Merged::new(model, &source.weights);
    match &source.weights {
        ModelWeights::Safetensors(files) => {
            write_like_files(files, &merged, staging.path(), dtype, progress)?;
            copy_side_files(&source.path, staging.path(), dtype, &model.config)?;
        }
        ModelWeights::Gguf(gguf) => {
            let dtype = dtype.unwrap_or(source.dtype());
            let names = {
                let mut names: Vec<String> = source.weights.names().into_iter().filter(|n| merged.keeps(n)).collect();
                names.sort();
                names
            };
            let mut specs = names
                .iter()
                .map(|name| Ok(TensorSpec { name: name.clone(), dtype, shape: gguf.shape(name)? }))
                .collect::<Result<Vec<_>>>()?;
            specs.extend(merged.added(dtype));
            write_tensors(&staging.join("model.safetensors"), &specs, &merged, None, progress, (0, specs.len()))?;
            write_gguf_side_files(gguf, &model.config, staging.path(), dtype)?;
        }
    }
    staging.publish()
}

/// The values an export writes: the source's, with the fine-tuning's changes merged in.
pub(crate) struct Merged<'a> {
    /// Parameters the fine-tuning changed (adapted or trained) and those the source does not
    /// have (a classifier's new head), by transformers name.
    changed: HashMap<String, NamedParam>,
    source: &'a ModelWeights,
    /// A classifier drops the language-model head (`lm_head.weight`) for its `score` head.
    classifier: bool,
}

impl<'a> Merged<'a> {
    pub(crate) fn new(model: &CausalLm, source: &'a ModelWeights) -> Self {
        let changed = named_parameters(model)
            .into_iter()
            .filter(|p| !p.is_adapter_factor() && (p.has_adapter() || p.trainable || !source.contains(&hf_name(&p.path))))
            .map(|p| (hf_name(&p.path), p))
            .collect();
        Self { changed, source, classifier: model.score.is_some() }
    }

    /// Whether the source's tensor `name` belongs in the export.
    fn keeps(&self, name: &str) -> bool {
        !(self.classifier && name == "lm_head.weight")
    }

    /// The tensors the model has and the source does not, in the checkpoint's layout.
    fn added(&self, dtype: WeightDtype) -> Vec<TensorSpec> {
        let mut added: Vec<TensorSpec> = self
            .changed
            .iter()
            .filter(|(name, _)| !self.source.contains(name))
            .map(|(name, p)| {
                let shape = if is_transposed(&p.path) { p.shape.iter().rev().copied().collect() } else { p.shape.clone() };
                TensorSpec { name: name.clone(), dtype, shape }
            })
            .collect();
        added.sort_by(|a, b| a.name.cmp(&b.name));
        added
    }

    /// The tensor transformers calls `name`, as the export writes it.
    pub(crate) fn values(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let spec = TensorSpec { name: name.to_string(), dtype: WeightDtype::F32, shape: shape.to_vec() };
        match self.changed_values(&spec)? {
            Some(values) => Ok(values),
            None => Ok(self.source.read(name, shape)?.values),
        }
    }

    /// The tensor's values, or `None` when the fine-tuning left it as it is.
    fn changed_values(&self, spec: &TensorSpec) -> Result<Option<Vec<f32>>> {
        let Some(param) = self.changed.get(&spec.name) else { return Ok(None) };
        let layout = |host| if is_transposed(&param.path) { transpose(&host) } else { host };
        Ok(Some(match param.adapter_delta_to_host() {
            // The source's own values plus the adapter's update, exact whatever precision the
            // frozen weight was held in on the device.
            Some(delta) => {
                let base = self.source.read(&spec.name, &spec.shape)?;
                base.values.iter().zip(layout(delta).values).map(|(w, d)| w + d).collect()
            }
            None => layout(param.to_host()).values,
        }))
    }
}

/// Writes one safetensors file of `specs`; tensors the fine-tuning did not change come from
/// `unchanged` (the source's bytes) or, without it, from the source's values.
fn write_tensors(
    path: &Path,
    specs: &[TensorSpec],
    merged: &Merged,
    unchanged: Option<&WeightFiles>,
    mut progress: impl FnMut(usize, usize),
    (mut done, total): (usize, usize),
) -> Result<usize> {
    let metadata = std::collections::BTreeMap::from([("format".to_string(), "pt".to_string())]);
    write_safetensors(path, specs, Some(&metadata), |spec| {
        let bytes = match (merged.changed_values(spec)?, unchanged) {
            (Some(values), _) => spec.dtype.encode(&values),
            (None, Some(files)) if files.dtype(&spec.name)? == spec.dtype => files.raw(&spec.name)?.to_vec(),
            (None, Some(files)) => spec.dtype.encode(&files.dtype(&spec.name)?.decode(files.raw(&spec.name)?)),
            (None, None) => spec.dtype.encode(&merged.source.read(&spec.name, &spec.shape)?.values),
        };
        done += 1;
        progress(done, total);
        Ok(bytes)
    })?;
    Ok(done)
}

/// The source folder's files, shards and index, with the merged values.
fn write_like_files(
    weights: &WeightFiles,
    merged: &Merged,
    out: &Path,
    dtype: Option<WeightDtype>,
    mut progress: impl FnMut(usize, usize),
) -> Result<()> {
    let files = weights.file_paths();
    // New tensors go into the last file, in the export's dtype (or that of the model's bulk).
    let added = merged.added(dtype.or(weights.dominant_dtype()).unwrap_or(WeightDtype::F32));
    let total = weights.names().filter(|n| merged.keeps(n)).count() + added.len();
    let mut done = 0;
    let mut total_size = 0usize;
    let mut weight_map = serde_json::Map::new();
    for (index, &file) in files.iter().enumerate() {
        let file_name = file.file_name().and_then(|n| n.to_str()).unwrap_or("model.safetensors").to_string();
        let mut names: Vec<&str> = weights.names().filter(|n| weights.file_of(n) == Some(file) && merged.keeps(n)).collect();
        names.sort();
        let mut specs = names
            .iter()
            .map(|name| {
                Ok(TensorSpec { name: name.to_string(), dtype: dtype.unwrap_or(weights.dtype(name)?), shape: weights.shape(name)? })
            })
            .collect::<Result<Vec<_>>>()?;
        if index + 1 == files.len() {
            specs.extend(added.iter().cloned());
        }
        for spec in &specs {
            total_size += spec.byte_len();
            weight_map.insert(spec.name.clone(), serde_json::Value::String(file_name.clone()));
        }
        done = write_tensors(&out.join(&file_name), &specs, merged, Some(weights), &mut progress, (done, total))?;
    }
    if weights.origin().join(INDEX_FILE).exists() {
        let index = serde_json::json!({
            "metadata": { "total_size": total_size },
            "weight_map": weight_map,
        });
        let text = serde_json::to_string_pretty(&index).unwrap_or_default();
        fsutil::write_atomic(&out.join(INDEX_FILE), text.as_bytes())?;
    }
    Ok(())
}

const INDEX_FILE: &str = "model.safetensors.index.json";

/// `config.json`, the tokenizer files and `generation_config.json` of a model read from GGUF.
fn write_gguf_side_files(gguf: &GgufModel, model: &ModelConfig, out: &Path, dtype: WeightDtype) -> Result<()> {
    let mut config = gguf.config_json()?;
    let rope_scaling = match &model.rope_scaling {
        RopeScaling::Factors(_) => {
            return Err(Error::invalid_file(
                &gguf.file.path,
                "its rope scaling (llama.cpp's rope_freqs) matches no Llama 3 setting, so config.json cannot describe it",
            ));
        }
        RopeScaling::Llama3 { factor, low_freq_factor, high_freq_factor, original_max_position_embeddings } => Some(serde_json::json!({
            "rope_type": "llama3", "factor": factor, "low_freq_factor": low_freq_factor, "high_freq_factor": high_freq_factor,
            "original_max_position_embeddings": original_max_position_embeddings,
        })),
        // The GGUF reader makes no LongRoPE (it opens no Phi-3).
        RopeScaling::Linear { .. } | RopeScaling::None | RopeScaling::LongRope { .. } => None,
    };
    let architecture = match gguf.architecture.as_str() {
        "qwen2" => "Qwen2ForCausalLM",
        _ => "LlamaForCausalLM",
    };
    if let Some(object) = config.as_object_mut() {
        object.insert("architectures".into(), serde_json::json!([architecture]));
        object.insert("torch_dtype".into(), serde_json::json!(dtype.torch_name()));
        if let Some(rope_scaling) = rope_scaling {
            object.insert("rope_scaling".into(), rope_scaling);
        }
    }
    describe_classifier(&mut config, model);
    let (tokenizer, tokenizer_config) = crate::gguf::tokenizer_files(&gguf.file)?;
    let generation = serde_json::json!({"bos_token_id": config.get("bos_token_id"), "eos_token_id": config.get("eos_token_id")});
    for (name, value) in [
        ("config.json", config),
        ("tokenizer.json", tokenizer),
        ("tokenizer_config.json", tokenizer_config),
        ("generation_config.json", generation),
    ] {
        let text = serde_json::to_string_pretty(&value).unwrap_or_default();
        fsutil::write_atomic(&out.join(name), text.as_bytes())?;
    }
    Ok(())
}

/// Copies config, tokenizer and generation files; records a changed dtype in `config.json`.
/// Makes `config.json` describe a classifier as transformers does: the `*ForSequenceClassification`
/// class, its labels both ways and the padding id its pooling skips. A language model's config
/// is left as it is.
fn describe_classifier(config: &mut serde_json::Value, model: &ModelConfig) {
    let (Some(labels), Some(object)) = (&model.labels, config.as_object_mut()) else { return };
    let class = object
        .get("architectures")
        .and_then(|a| a.get(0))
        .and_then(|a| a.as_str())
        .map(|a| a.replace("ForCausalLM", "ForSequenceClassification"))
        .filter(|a| a.ends_with("ForSequenceClassification"))
        .unwrap_or_else(|| "LlamaForSequenceClassification".to_string());
    object.insert("architectures".into(), serde_json::json!([class]));
    object.insert("id2label".into(), labels.id2label());
    object.insert("label2id".into(), labels.label2id());
    object.insert("problem_type".into(), serde_json::json!("single_label_classification"));
    if let Some(pad) = model.pad_token_id {
        object.insert("pad_token_id".into(), serde_json::json!(pad));
    }
}

fn copy_side_files(from: &Path, to: &Path, dtype: Option<WeightDtype>, model: &ModelConfig) -> Result<()> {
    let entries = std::fs::read_dir(from).map_err(|e| Error::io(from, e))?;
    for entry in entries.flatten() {
        let path = entry.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else { continue };
        if !path.is_file() || is_weight_file(name) || name.starts_with('.') {
            continue;
        }
        let target = to.join(name);
        if name == "config.json" && (dtype.is_some() || model.labels.is_some()) {
            let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
            let mut config: serde_json::Value = serde_json::from_str(&text).map_err(|e| Error::invalid_file(&path, e.to_string()))?;
            if let (Some(obj), Some(dtype)) = (config.as_object_mut(), dtype) {
                for key in ["torch_dtype", "dtype"] {
                    if obj.contains_key(key) || key == "torch_dtype" {
                        obj.insert(key.into(), serde_json::Value::String(dtype.torch_name().into()));
                    }
                }
            }
            describe_classifier(&mut config, model);
            let text = serde_json::to_string_pretty(&config).unwrap_or_default();
            fsutil::write_atomic(&target, text.as_bytes())?;
        } else {
            std::fs::copy(&path, &target).map_err(|e| Error::io(&path, e))?;
        }
    }
    Ok(())
}
