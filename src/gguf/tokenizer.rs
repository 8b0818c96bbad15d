//! The tokenizer a GGUF file carries (`tokenizer.ggml.*`), rebuilt as the `tokenizer.json` and
//! `tokenizer_config.json` of a Hugging Face folder, so one tokenizer implementation serves both:
//! byte-level BPE (`gpt2`: Llama 3, Qwen, SmolLM) with the file's merges, and SentencePiece BPE
//! (`llama`: Llama 2, Mistral) with merges derived from the pieces' scores.

use serde_json::{Value as Json, json};

use super::{GgufFile, Value};
use crate::error::{Error, Result};

/// llama.cpp's token types.
const CONTROL: i64 = 3;
const USER_DEFINED: i64 = 4;

/// SentencePiece's stand-in for a space.
const SPACE: &str = "\u{2581}";

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
    let strings = |key: &str| -> Result<Vec<String>> {
        let items = file.get(key)?.as_array().ok_or_else(|| bad(format!("metadata `{key}` is not a list")))?;
        items.iter().map(|v| v.as_str().map(str::to_string).ok_or_else(|| bad(format!("metadata `{key}` holds a non-string")))).collect()
    };
    let tokens = strings("tokenizer.ggml.tokens")?;
    let types: Vec<i64> = match file.metadata.get("tokenizer.ggml.token_type").and_then(Value::as_array) {
        Some(items) => items.iter().map(|v| v.as_f64().unwrap_or(1.0) as i64).collect(),
        None => vec![1; tokens.len()],
    };
    let (normalizer, pre, merges, decoder, spm) = match model {
        "gpt2" => {
            // llama.cpp falls back to its "default" splitting when the key is missing: not one we match.
            let pre_name = file.metadata.get("tokenizer.ggml.pre").and_then(Value::as_str).unwrap_or("default");
            let pre = pre_tokenizer(pre_name)
                .ok_or_else(|| bad(format!("tokenizer.ggml.pre `{pre_name}` is not supported ({SUPPORTED_PRE})")))?;
            let merges: Vec<Json> = strings("tokenizer.ggml.merges")?.into_iter().map(Json::String).collect();
            // Llama 3's tokenizer takes a whole word that is in the vocabulary before any merge.
            let ignore_merges = matches!(pre_name, "llama-bpe" | "llama3");
            let decoder = json!({"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true});
            (Json::Null, pre, merges, decoder, (ignore_merges, false))
        }
        "llama" => {
            let scores: Vec<f64> = match file.get("tokenizer.ggml.scores")?.as_array() {
                Some(items) => items.iter().map(|v| v.as_f64().unwrap_or(0.0)).collect(),
                None => return Err(bad("metadata `tokenizer.ggml.scores` is not a list".into())),
            };
            if scores.len() != tokens.len() {
                return Err(bad(format!("{} token scores for {} tokens", scores.len(), tokens.len())));
            }
            // SentencePiece marks every word's start, the text's first included, with `▁`.
            let add_space_prefix = file.metadata.get("tokenizer.ggml.add_space_prefix") != Some(&Value::Bool(false));
            let replace = json!({"type": "Replace", "pattern": {"String": " "}, "content": SPACE});
            let normalizer = match add_space_prefix {
                true => json!({"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": SPACE}, replace]}),
                false => replace,
            };
            let decoder = json!({"type": "Sequence", "decoders": [
                {"type": "Replace", "pattern": {"String": SPACE}, "content": " "},
                {"type": "ByteFallback"},
                {"type": "Fuse"},
                {"type": "Strip", "content": " ", "start": usize::from(add_space_prefix), "stop": 0},
            ]});
            (normalizer, Json::Null, sentencepiece_merges(&tokens, &scores, &types), decoder, (false, true))
        }
        other => {
            return Err(bad(format!("tokenizer.ggml.model `{other}` is not supported yet (gpt2: byte-level BPE; llama: SentencePiece)")));
        }
    };
    let (ignore_merges, byte_fallback) = spm;

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
    let unk = byte_fallback.then(|| token("tokenizer.ggml.unknown_token_id")).flatten();
    let tokenizer = json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": normalizer,
        "pre_tokenizer": pre,
        "post_processor": post_processor,
        "decoder": decoder,
        "model": {"type": "BPE", "dropout": null, "unk_token": unk, "continuing_subword_prefix": null, "end_of_word_suffix": null,
                  "fuse_unk": byte_fallback, "byte_fallback": byte_fallback, "ignore_merges": ignore_merges, "vocab": vocab, "merges": merges},
    });
    let config = json!({
        "chat_template": file.metadata.get("tokenizer.chat_template").and_then(Value::as_str),
        "bos_token": bos,
        "eos_token": token("tokenizer.ggml.eos_token_id"),
        "pad_token": token("tokenizer.ggml.padding_token_id"),
    });
    Ok((tokenizer, config))
}

/// The merges a SentencePiece BPE vocabulary implies, as transformers derives them: every split of
/// a normal piece into two pieces of the vocabulary, ordered by the piece's score, highest first
/// (SentencePiece merges the adjacent pair whose union scores highest), and within a piece by
/// the ids of its two halves. Each merge is a `[left, right]` pair: pieces may hold spaces.
fn sentencepiece_merges(tokens: &[String], scores: &[f64], types: &[i64]) -> Vec<Json> {
    const NORMAL: i64 = 1;
    let ids: std::collections::HashMap<&str, usize> = tokens.iter().enumerate().map(|(id, t)| (t.as_str(), id)).collect();
    let mut merges: Vec<(f64, usize, usize)> = Vec::new();
    for (id, piece) in tokens.iter().enumerate().filter(|(id, _)| types.get(*id).is_none_or(|t| *t == NORMAL)) {
        let mut local: Vec<(usize, usize)> =
            piece.char_indices().skip(1).filter_map(|(at, _)| Some((*ids.get(&piece[..at])?, *ids.get(&piece[at..])?))).collect();
        local.sort();
        merges.extend(local.into_iter().map(|(left, right)| (scores[id], left, right)));
    }
    // Stable: equal scores keep the order above.
    merges.sort_by(|a, b| b.0.total_cmp(&a.0));
    merges.into_iter().map(|(_, left, right)| json!([tokens[left], tokens[right]])).collect()
}
