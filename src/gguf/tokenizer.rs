//! The tokenizer a GGUF file carries (`tokenizer.ggml.*`), rebuilt as the `tokenizer.json` and
//! `tokenizer_config.json` of a Hugging Face folder, so one tokenizer implementation serves both.

use serde_json::{Value as Json, json};

use super::{GgufFile, Value};
use crate::error::{Error, Result};

/// llama.cpp's token types.
const CONTROL: i64 = 3;
const USER_DEFINED: i64 = 4;

/// Byte-level BPE pre-tokenizers by llama.cpp's `tokenizer.ggml.pre` name. Each must split text
/// exactly as the model's own `tokenizer.json` does, or token ids change without a word.
fn pre_tokenizer(pre: &str) -> Option<Json> {
    let byte_level =
        |use_regex: bool| json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": use_regex});
    let split = |pattern: &str| json!({"type": "Split", "pattern": {"Regex": pattern}, "behavior": "Isolated", "invert": false});
    Some(match pre {
        "gpt-2" => byte_level(true),
        "smollm" => json!({"type": "Sequence", "pretokenizers": [{"type": "Digits", "individual_digits": true}, byte_level(true)]}),
        "qwen2" => json!({"type": "Sequence", "pretokenizers": [
            split(r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"),
            byte_level(false),
        ]}),
        "llama-bpe" | "llama3" => json!({"type": "Sequence", "pretokenizers": [
            split(r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"),
            byte_level(false),
        ]}),
        _ => return None,
    })
}

const SUPPORTED_PRE: &str = "gpt-2, smollm, qwen2, llama-bpe";

/// `(tokenizer.json, tokenizer_config.json)` for the tokenizer in `file`.
pub fn tokenizer_files(file: &GgufFile) -> Result<(Json, Json)> {
    let bad = |message: String| Error::invalid_file(&file.path, message);
    let model = file.get_str("tokenizer.ggml.model")?;
    if model != "gpt2" {
        return Err(bad(format!("tokenizer.ggml.model `{model}` is not supported yet (gpt2, byte-level BPE)")));
    }
    // llama.cpp falls back to its "default" splitting when the key is missing: not one we match.
    let pre_name = file.metadata.get("tokenizer.ggml.pre").and_then(Value::as_str).unwrap_or("default");
    let pre = pre_tokenizer(pre_name).ok_or_else(|| bad(format!("tokenizer.ggml.pre `{pre_name}` is not supported ({SUPPORTED_PRE})")))?;
    let strings = |key: &str| -> Result<Vec<String>> {
        let items = file.get(key)?.as_array().ok_or_else(|| bad(format!("metadata `{key}` is not a list")))?;
        items.iter().map(|v| v.as_str().map(str::to_string).ok_or_else(|| bad(format!("metadata `{key}` holds a non-string")))).collect()
    };
    let tokens = strings("tokenizer.ggml.tokens")?;
    let merges = strings("tokenizer.ggml.merges")?;
    let types: Vec<i64> = match file.metadata.get("tokenizer.ggml.token_type").and_then(Value::as_array) {
        Some(items) => items.iter().map(|v| v.as_f64().unwrap_or(1.0) as i64).collect(),
        None => vec![1; tokens.len()],
    };

    let vocab: serde_json::Map<String, Json> = tokens.iter().enumerate().map(|(id, t)| (t.clone(), json!(id))).collect();
    let added: Vec<Json> = tokens
        .iter()
        .zip(&types)
        .enumerate()
        .filter(|(_, (_, t))| **t == CONTROL || **t == USER_DEFINED)
        .map(|(id, (content, t))| {
            json!({"id": id, "content": content, "single_word": false, "lstrip": false, "rstrip": false,
                   "normalized": false, "special": *t == CONTROL})
        })
        .collect();
    let token = |key: &str| file.metadata.get(key).and_then(Value::as_u64).and_then(|id| tokens.get(id as usize)).cloned();
    let bos = token("tokenizer.ggml.bos_token_id");
    let add_bos = file.metadata.get("tokenizer.ggml.add_bos_token") == Some(&Value::Bool(true));
    let post_processor = match (&bos, add_bos) {
        (Some(bos), true) => {
            let id = vocab[bos].clone();
            json!({"type": "TemplateProcessing",
                   "single": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
                   "pair": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
                   "special_tokens": {bos: {"id": bos, "ids": [id], "tokens": [bos]}}})
        }
        _ => Json::Null,
    };
    // Llama 3's tokenizer takes a whole word that is in the vocabulary before any merge.
    let ignore_merges = matches!(pre_name, "llama-bpe" | "llama3");
    let tokenizer = json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": null,
        "pre_tokenizer": pre,
        "post_processor": post_processor,
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
        "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null, "end_of_word_suffix": null,
                  "fuse_unk": false, "byte_fallback": false, "ignore_merges": ignore_merges, "vocab": vocab, "merges": merges},
    });
    let config = json!({
        "chat_template": file.metadata.get("tokenizer.chat_template").and_then(Value::as_str),
        "bos_token": bos,
        "eos_token": token("tokenizer.ggml.eos_token_id"),
        "pad_token": token("tokenizer.ggml.padding_token_id"),
    });
    Ok((tokenizer, config))
}
