//! Exports for llama.cpp and Ollama: the merged model as GGUF (F32, F16, Q8_0 or Q4_0), the LoRA
//! adapter as llama.cpp's adapter GGUF, and an Ollama `Modelfile`.
//!
//! Names, the Q/K row order and the metadata keys are those of llama.cpp's own converters
//! (`convert_hf_to_gguf.py`, `convert_lora_to_gguf.py`), so llama.cpp reads what we write as it
//! reads what they write.

use std::path::Path;

use serde_json::Value as Json;

use super::model::gguf_name_in;
use super::model::{RowOrder, llama3_divisor, reorder_rows};
use super::writer::{MetaValue, TensorPlan, write_gguf};
use super::{GgmlType, Value};
use crate::error::{Error, Result};
use crate::export::Merged;
use crate::method::LoraSettings;
use crate::model::{Architecture, CausalLm, ModelConfig, ModelFolder, ModelWeights, RopeScaling, transpose};
use crate::params::named_parameters;

/// The types a GGUF export can take, by the name `--gguf-type` uses.
pub const EXPORT_TYPES: [(&str, GgmlType); 4] =
    [("f32", GgmlType::F32), ("f16", GgmlType::F16), ("q8_0", GgmlType::Q8_0), ("q4_0", GgmlType::Q4_0)];

/// llama.cpp's `general.file_type` for a whole-file type.
fn file_type(t: GgmlType) -> u32 {
    match t {
        GgmlType::F32 => 0,
        GgmlType::F16 => 1,
        GgmlType::Q4_0 => 2,
        GgmlType::Q8_0 => 7,
        _ => 1,
    }
}

/// llama.cpp's architecture name (Mistral models are converted as `llama`), once the model is
/// one llama.cpp computes as transformers does: it fixes some of Gemma's variations in code rather
/// than reading them from the file, and a model that varies them otherwise is refused, saying
/// which.
pub fn gguf_architecture(config: &ModelConfig) -> Result<&'static str> {
    let arch = match config.architecture {
        Architecture::Qwen2 => "qwen2",
        Architecture::Qwen3 => "qwen3",
        Architecture::Llama | Architecture::Mistral => "llama",
        Architecture::SmolLm3 => "smollm3",
        Architecture::Gemma2 => "gemma2",
        Architecture::Gemma3 => "gemma3",
        Architecture::Phi3 => "phi3",
    };
    let refuse = |why: String| {
        Err(Error::setting(
            "export",
            format!(
                "llama.cpp cannot run this {} model as transformers does: {why}; export a Hugging Face folder (--merged) or a PEFT adapter",
                config.architecture.name()
            ),
        ))
    };
    if matches!(arch, "gemma2" | "gemma3") {
        if config.query_pre_attn_scalar != config.head_dim as f64 {
            return refuse(format!(
                "its attention scales by 1/√{} (query_pre_attn_scalar), where llama.cpp scales Gemma's by 1/√head_dim = 1/√{}",
                config.query_pre_attn_scalar, config.head_dim
            ));
        }
        // llama.cpp's Gemma 2 slides every other layer from the first, Gemma 3 five in six.
        let period = if arch == "gemma2" { 2 } else { 6 };
        if config.sliding_window.is_some() && config.layers.iter().enumerate().any(|(i, l)| l.sliding != (i % period < period - 1)) {
            return refuse(format!(
                "its sliding-window layers are not llama.cpp's fixed layout for {arch} ({} of every {period})",
                period - 1
            ));
        }
        if arch == "gemma3" && config.local_rope_theta.is_some_and(|theta| theta != 10_000.0) {
            return refuse("its sliding-window layers' RoPE base is not llama.cpp's fixed 10000".into());
        }
    }
    Ok(arch)
}

/// Writes `model` with its adapters merged into the GGUF file `out`, its weight matrices in
/// `ggml_type` (norms stay F32; a matrix whose rows are not whole blocks falls back to F16).
pub fn export_gguf(
    model: &CausalLm,
    source: &ModelFolder,
    out: &Path,
    ggml_type: GgmlType,
    mut progress: impl FnMut(usize, usize),
) -> Result<()> {
    let config = &source.config;
    let arch = gguf_architecture(config)?;
    let mut metadata = model_metadata(config, arch, file_type(ggml_type));
    metadata.extend(tokenizer_metadata(source)?);

    let mut names = source.weights.names();
    names.sort();
    let mut plans = Vec::new();
    let mut sources = Vec::new();
    // Rope factors llama.cpp reads as tensors: Llama 3's divisors, Phi-3's LongRoPE factors.
    let rope_factors = rope_factor_tensors(config);
    for (name, values) in &rope_factors {
        plans.push(TensorPlan { name: name.to_string(), shape: vec![values.len()], ggml_type: GgmlType::F32 });
        sources.push(None);
    }
    for name in &names {
        let Some(gguf) = gguf_name_in(arch, name) else { continue };
        let shape = source.weights.shape(name)?;
        let whole_blocks = shape.last().is_some_and(|cols| cols.is_multiple_of(ggml_type.block().0));
        let t = match shape.len() {
            1 => GgmlType::F32,
            _ if whole_blocks => ggml_type,
            _ => GgmlType::F16,
        };
        plans.push(TensorPlan { name: gguf, shape, ggml_type: t });
        sources.push(Some(name.clone()));
    }
    let merged = Merged::new(model, &source.weights);
    let total = plans.len();
    let mut done = 0;
    write_gguf(out, &metadata, &plans, |plan| {
        let index = plans.iter().position(|p| p.name == plan.name).unwrap_or(0);
        let values = match &sources[index] {
            None => rope_factors.iter().find(|(name, _)| *name == plan.name).map(|(_, v)| v.clone()).unwrap_or_default(),
            Some(name) => {
                let values = merged.values(name, &plan.shape)?;
                match (arch, plan.name.as_str()) {
                    // convert_hf_to_gguf.py stores Gemma's norms as the factor they multiply by.
                    ("gemma2" | "gemma3", n) if n.ends_with("norm.weight") => values.iter().map(|w| w + 1.0).collect(),
                    ("llama", n) if n.ends_with("attn_q.weight") => {
                        reorder_rows(&values, &plan.shape, config.num_attention_heads, RowOrder::ToGguf)
                    }
                    ("llama", n) if n.ends_with("attn_k.weight") => {
                        reorder_rows(&values, &plan.shape, config.num_key_value_heads, RowOrder::ToGguf)
                    }
                    _ => values,
                }
            }
        };
        done += 1;
        progress(done, total);
        plan.ggml_type
            .quantize(&values)
            .ok_or_else(|| Error::setting("gguf_type", format!("wgtune does not write {}", plan.ggml_type.name())))
    })
}

/// Writes the attached LoRA adapter as llama.cpp's adapter GGUF (`--lora` in llama.cpp,
/// `ADAPTER` in an Ollama Modelfile).
pub fn export_gguf_adapter(model: &CausalLm, settings: &LoraSettings, source: &ModelFolder, out: &Path) -> Result<()> {
    let config = &source.config;
    let arch = gguf_architecture(config)?;
    let metadata = vec![
        ("general.architecture".to_string(), MetaValue::Str(arch.into())),
        ("general.type".to_string(), MetaValue::Str("adapter".into())),
        ("general.name".to_string(), MetaValue::Str(format!("{} LoRA (wgtune)", name_of(source)))),
        ("adapter.type".to_string(), MetaValue::Str("lora".into())),
        // llama.cpp scales by alpha / rank: rsLoRA's alpha / sqrt(rank) is the same with this alpha.
        ("adapter.lora.alpha".to_string(), MetaValue::F32((settings.scale() * settings.rank as f64) as f32)),
    ];
    let mut tensors: Vec<(TensorPlan, Vec<f32>)> = Vec::new();
    for p in named_parameters(model).into_iter().filter(|p| p.is_adapter_factor()) {
        // `layers.0.self_attn.q_proj.weight.lora.a`: Burn keeps a [in, r] and b [r, out];
        // llama.cpp, like PEFT, A [r, in] and B [out, r] in PyTorch order.
        let Some((module, factor)) = p.path.rsplit_once(".lora.") else { continue };
        let hf = format!("model.{module}");
        let gguf = gguf_name_in(arch, &hf).ok_or_else(|| Error::setting("adapter", format!("`{hf}` has no llama.cpp name")))?;
        let mut host = transpose(&p.to_host());
        if factor == "b" && arch == "llama" {
            let heads = match gguf.as_str() {
                n if n.ends_with("attn_q.weight") => Some(config.num_attention_heads),
                n if n.ends_with("attn_k.weight") => Some(config.num_key_value_heads),
                _ => None,
            };
            if let Some(heads) = heads {
                host.values = reorder_rows(&host.values, &host.shape, heads, RowOrder::ToGguf);
            }
        }
        let name = format!("{gguf}.lora_{factor}");
        tensors.push((TensorPlan { name, shape: host.shape.clone(), ggml_type: GgmlType::F32 }, host.values));
    }
    if tensors.is_empty() {
        return Err(Error::setting("adapter", "this model has no LoRA adapter to export"));
    }
    tensors.sort_by(|a, b| a.0.name.cmp(&b.0.name));
    let plans: Vec<TensorPlan> = tensors.iter().map(|(p, _)| p.clone()).collect();
    write_gguf(out, &metadata, &plans, |plan| {
        let values = &tensors.iter().find(|(p, _)| p.name == plan.name).map(|(_, v)| v.clone()).unwrap_or_default();
        plan.ggml_type.quantize(values).ok_or_else(|| Error::setting("adapter", "F32 always encodes"))
    })
}

/// An Ollama `Modelfile` for the GGUF `model_file` beside it (and an `adapter_file` on top of
/// it, if given): stop tokens from the tokenizer, and ChatML's template where the model uses
/// ChatML (Ollama reads other templates from the GGUF metadata itself).
pub fn modelfile(model_file: &str, adapter_file: Option<&str>, chat_template: Option<&str>, stop_tokens: &[String]) -> String {
    let mut text = format!("FROM {model_file}\n");
    if let Some(adapter) = adapter_file {
        text.push_str(&format!("ADAPTER {adapter}\n"));
    }
    if chat_template.is_some_and(|t| t.contains("<|im_start|>")) {
        text.push_str(CHATML_TEMPLATE);
    }
    // The system prompt the chat template adds to a conversation without one, which the model
    // was trained with: Ollama's template sees it only as the Modelfile's SYSTEM.
    if let Some(system) = chat_template.and_then(crate::chat_template::default_system_prompt) {
        text.push_str(&format!("SYSTEM \"\"\"{}\"\"\"\n", system.replace("\"\"\"", "\"\" \"")));
    }
    for stop in stop_tokens {
        text.push_str(&format!("PARAMETER stop \"{}\"\n", stop.replace('"', "\\\"")));
    }
    text
}

/// ChatML in Ollama's Go template language. The system turn is `.System` (the conversation's
/// system message, else the Modelfile's SYSTEM); system messages in `.Messages` are not repeated.
const CHATML_TEMPLATE: &str = r#"TEMPLATE """{{- if .System }}<|im_start|>system
{{ .System }}<|im_end|>
{{ end }}{{- range .Messages }}{{ if ne .Role "system" }}<|im_start|>{{ .Role }}
{{ .Content }}<|im_end|>
{{ end }}{{ end }}<|im_start|>assistant
"""
"#;

fn name_of(source: &ModelFolder) -> String {
    source.path.file_stem().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "model".into())
}

fn model_metadata(config: &ModelConfig, arch: &str, file_type: u32) -> Vec<(String, MetaValue)> {
    let key = |k: &str| format!("{arch}.{k}");
    let u32_of = |v: usize| MetaValue::U32(v as u32);
    let mut metadata = vec![
        ("general.architecture".to_string(), MetaValue::Str(arch.into())),
        ("general.file_type".to_string(), MetaValue::U32(file_type)),
        (key("context_length"), u32_of(config.max_position_embeddings)),
        (key("embedding_length"), u32_of(config.hidden_size)),
        (key("block_count"), u32_of(config.num_hidden_layers)),
        (key("feed_forward_length"), u32_of(config.intermediate_size)),
        (key("attention.head_count"), u32_of(config.num_attention_heads)),
        (key("attention.head_count_kv"), u32_of(config.num_key_value_heads)),
        (key("attention.key_length"), u32_of(config.head_dim)),
        (key("attention.value_length"), u32_of(config.head_dim)),
        (key("rope.dimension_count"), u32_of(config.rotary_dim)),
        (key("rope.freq_base"), MetaValue::F32(config.rope_theta as f32)),
        (key("attention.layer_norm_rms_epsilon"), MetaValue::F32(config.rms_norm_eps as f32)),
        (key("vocab_size"), u32_of(config.vocab_size)),
    ];
    if let RopeScaling::Linear { factor } = config.rope_scaling {
        metadata.push((key("rope.scaling.type"), MetaValue::Str("linear".into())));
        metadata.push((key("rope.scaling.factor"), MetaValue::F32(factor as f32)));
    }
    if let RopeScaling::LongRope { original_max_position_embeddings, attention_factor, .. } = config.rope_scaling {
        metadata.push((key("rope.scaling.original_context_length"), u32_of(original_max_position_embeddings)));
        metadata.push((key("rope.scaling.attn_factor"), MetaValue::F32(attention_factor as f32)));
    }
    if let Some(window) = config.sliding_window.filter(|_| arch != "llama") {
        metadata.push((key("attention.sliding_window"), u32_of(window)));
    }
    if let Some(cap) = config.attn_logit_softcapping {
        metadata.push((key("attn_logit_softcapping"), MetaValue::F32(cap as f32)));
    }
    if let Some(cap) = config.final_logit_softcapping {
        metadata.push((key("final_logit_softcapping"), MetaValue::F32(cap as f32)));
    }
    metadata
}

/// The rope factors llama.cpp reads as tensors of their own, by name: Llama 3's
/// `rope_freqs.weight`, Phi-3's LongRoPE `rope_factors_long/short.weight`.
fn rope_factor_tensors(config: &ModelConfig) -> Vec<(&'static str, Vec<f32>)> {
    match &config.rope_scaling {
        RopeScaling::Llama3 { .. } => vec![("rope_freqs.weight", llama3_rope_factors(config))],
        RopeScaling::LongRope { short_factor, long_factor, .. } => {
            let f32s = |v: &[f64]| v.iter().map(|&x| x as f32).collect();
            vec![("rope_factors_long.weight", f32s(long_factor)), ("rope_factors_short.weight", f32s(short_factor))]
        }
        _ => Vec::new(),
    }
}

/// The tokenizer's `tokenizer.*` metadata: copied from a GGUF source, or built from a folder's
/// `tokenizer.json` and `tokenizer_config.json`.
fn tokenizer_metadata(source: &ModelFolder) -> Result<Vec<(String, MetaValue)>> {
    match &source.weights {
        ModelWeights::Gguf(gguf) => Ok(gguf
            .file
            .metadata
            .iter()
            .filter(|(k, _)| k.starts_with("tokenizer."))
            .filter_map(|(k, v)| Some((k.clone(), meta_of(k, v)?)))
            .collect()),
        ModelWeights::Safetensors(_) => folder_tokenizer_metadata(&source.path),
    }
}

/// The typed value llama.cpp expects for a tokenizer key read back from GGUF.
fn meta_of(key: &str, value: &Value) -> Option<MetaValue> {
    Some(match value {
        Value::Str(s) => MetaValue::Str(s.clone()),
        Value::Bool(b) => MetaValue::Bool(*b),
        Value::Int(_) | Value::UInt(_) => MetaValue::U32(value.as_u64()? as u32),
        Value::Float(f) => MetaValue::F32(*f as f32),
        Value::Array(items) if key.ends_with("token_type") => {
            MetaValue::I32Array(items.iter().map(|v| v.as_f64().unwrap_or(1.0) as i32).collect())
        }
        Value::Array(items) if items.iter().all(|v| v.as_str().is_some()) => {
            MetaValue::StrArray(items.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
        }
        // Scores and other float arrays llama.cpp does not need for byte-level BPE.
        Value::Array(_) => return None,
    })
}

fn folder_tokenizer_metadata(folder: &Path) -> Result<Vec<(String, MetaValue)>> {
    let path = folder.join("tokenizer.json");
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    let json: Json = serde_json::from_str(&text).map_err(|e| Error::invalid_file(&path, e.to_string()))?;
    let bad = |m: String| Error::invalid_file(&path, m);
    let model = &json["model"];
    if model["type"] != "BPE" {
        return Err(bad(format!("a {} tokenizer cannot be written to GGUF yet (byte-level BPE only)", model["type"])));
    }
    let pre = pre_name(&json["pre_tokenizer"])
        .ok_or_else(|| bad("its pre-tokenizer matches none that llama.cpp knows by name (gpt-2, smollm, qwen2, llama-bpe)".into()))?;
    let vocab = model["vocab"].as_object().ok_or_else(|| bad("no `model.vocab`".into()))?;
    let added: Vec<(u64, String, bool)> = json["added_tokens"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|t| Some((t["id"].as_u64()?, t["content"].as_str()?.to_string(), t["special"].as_bool().unwrap_or(false))))
                .collect()
        })
        .unwrap_or_default();
    let size = vocab.values().filter_map(Json::as_u64).chain(added.iter().map(|a| a.0)).max().map_or(0, |m| m as usize + 1);
    let mut tokens = vec![String::new(); size];
    let mut types = vec![1i32; size];
    for (token, id) in vocab {
        if let Some(id) = id.as_u64() {
            tokens[id as usize] = token.clone();
        }
    }
    for (id, content, special) in &added {
        tokens[*id as usize] = content.clone();
        types[*id as usize] = if *special { 3 } else { 4 };
    }
    if let Some(hole) = tokens.iter().position(String::is_empty) {
        return Err(bad(format!("token id {hole} has no token: llama.cpp needs ids without gaps")));
    }
    let merges: Vec<String> = model["merges"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|m| match m {
                    Json::String(s) => Some(s.clone()),
                    Json::Array(pair) => Some(format!("{} {}", pair.first()?.as_str()?, pair.get(1)?.as_str()?)),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();

    let config_path = folder.join("tokenizer_config.json");
    let config: Json = std::fs::read_to_string(&config_path).ok().and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default();
    let id_of = |field: &str| -> Option<u32> {
        let text = match &config[field] {
            Json::String(s) => s.clone(),
            Json::Object(o) => o.get("content")?.as_str()?.to_string(),
            _ => return None,
        };
        tokens.iter().position(|t| *t == text).map(|i| i as u32)
    };
    let chat_template =
        std::fs::read_to_string(folder.join("chat_template.jinja")).ok().or_else(|| config["chat_template"].as_str().map(str::to_string));

    let mut metadata = vec![
        ("tokenizer.ggml.model".to_string(), MetaValue::Str("gpt2".into())),
        ("tokenizer.ggml.pre".to_string(), MetaValue::Str(pre.into())),
        ("tokenizer.ggml.tokens".to_string(), MetaValue::StrArray(tokens.clone())),
        ("tokenizer.ggml.token_type".to_string(), MetaValue::I32Array(types)),
        ("tokenizer.ggml.merges".to_string(), MetaValue::StrArray(merges)),
        ("tokenizer.ggml.add_bos_token".to_string(), MetaValue::Bool(config["add_bos_token"].as_bool().unwrap_or(false))),
    ];
    for (field, key) in [("bos_token", "bos_token_id"), ("eos_token", "eos_token_id"), ("pad_token", "padding_token_id")] {
        if let Some(id) = id_of(field) {
            metadata.push((format!("tokenizer.ggml.{key}"), MetaValue::U32(id)));
        }
    }
    if let Some(template) = chat_template {
        metadata.push(("tokenizer.chat_template".to_string(), MetaValue::Str(template)));
    }
    Ok(metadata)
}

/// llama.cpp's `tokenizer.ggml.pre` for a `tokenizer.json` pre-tokenizer (the inverse of
/// [`super::tokenizer`]'s table).
fn pre_name(pre: &Json) -> Option<&'static str> {
    let byte_level = |j: &Json| j["type"] == "ByteLevel";
    match pre["type"].as_str()? {
        "ByteLevel" => Some("gpt-2"),
        "Sequence" => {
            let parts = pre["pretokenizers"].as_array()?;
            match parts.as_slice() {
                [digits, bl] if digits["type"] == "Digits" && byte_level(bl) => Some("smollm"),
                [split, bl] if split["type"] == "Split" && byte_level(bl) => {
                    let regex = split["pattern"]["Regex"].as_str()?;
                    if regex.contains(r"\p{N}{1,3}") {
                        Some("llama-bpe")
                    } else if regex.contains(r"\p{N}|") {
                        Some("qwen2")
                    } else {
                        None
                    }
                }
                _ => None,
            }
        }
        _ => None,
    }
}

/// convert_hf_to_gguf.py's `rope_freqs` for Llama 3 rope scaling: one divisor per frequency.
fn llama3_rope_factors(config: &ModelConfig) -> Vec<f32> {
    let RopeScaling::Llama3 { factor, low_freq_factor: low, high_freq_factor: high, original_max_position_embeddings: original } =
        config.rope_scaling
    else {
        return Vec::new();
    };
    let dim = config.head_dim;
    (0..dim / 2)
        .map(|i| {
            // The converter computes the frequencies in f32.
            let freq = 1.0 / (config.rope_theta as f32).powf((2 * i) as f32 / dim as f32) as f64;
            llama3_divisor(freq, factor, low, high, original) as f32
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokenizer::Message;

    #[test]
    fn the_modelfile_names_the_files_the_template_and_the_stops() {
        let text = modelfile("./model.gguf", None, Some("{{ '<|im_start|>' }}"), &["<|im_end|>".to_string()]);
        assert!(text.starts_with("FROM ./model.gguf\nTEMPLATE \"\"\"{{- if .System }}<|im_start|>system"), "{text}");
        assert!(text.ends_with("PARAMETER stop \"<|im_end|>\"\n"), "{text}");
        let text = modelfile("/models/base.gguf", Some("./lora.gguf"), Some("[INST]"), &[]);
        assert_eq!(text, "FROM /models/base.gguf\nADAPTER ./lora.gguf\n");
    }

    /// The Modelfile's TEMPLATE as Ollama fills it in: `.System` the conversation's system
    /// message, else the Modelfile's SYSTEM; then the other messages.
    fn as_ollama_renders(modelfile: &str, messages: &[Message]) -> String {
        let default = modelfile.split_once("SYSTEM \"\"\"").and_then(|(_, rest)| rest.split_once("\"\"\"")).map(|(s, _)| s);
        let system = messages.iter().find(|m| m.role == "system").map(|m| m.content.as_str()).or(default);
        let mut out = system.map(|s| format!("<|im_start|>system\n{s}<|im_end|>\n")).unwrap_or_default();
        for m in messages.iter().filter(|m| m.role != "system") {
            out.push_str(&format!("<|im_start|>{}\n{}<|im_end|>\n", m.role, m.content));
        }
        out + "<|im_start|>assistant\n"
    }

    /// SmolLM2's template (the fixtures') adds a system prompt to a conversation without one: the
    /// Modelfile carries it as SYSTEM, so Ollama prompts the model as it was trained, with a
    /// system message and without.
    #[test]
    fn the_modelfile_carries_the_templates_default_system_prompt() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tiny-llama/chat_template.jinja");
        let template = std::fs::read_to_string(path).unwrap();
        let text = modelfile("./model.gguf", None, Some(&template), &[]);
        assert!(text.contains("SYSTEM \"\"\"You are a helpful assistant.\"\"\"\n"), "{text}");
        assert!(text.contains("{{ if ne .Role \"system\" }}"), "{text}");
        let question = Message::new("user", "What is two and three?");
        for conversation in [vec![question.clone()], vec![Message::new("system", "Answer in French."), question]] {
            let theirs = crate::chat_template::render(&template, &conversation, true, "", "").unwrap();
            assert_eq!(as_ollama_renders(&text, &conversation), theirs);
        }
    }
}
