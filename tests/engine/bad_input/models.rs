//! Hostile model folders: config fields, weights, tokenizers and adapters that do not fit are
//! refused before any tensor work, naming the file and field.

use serde_json::json;

use super::harness::{Sandbox, generate_args, refused, refused_with_env, s, train_args};

type ConfigEdit = fn(&mut serde_json::Map<String, serde_json::Value>);

#[test]
fn config_fields_that_cannot_work_are_named() {
    let cases: &[(&str, ConfigEdit, &[&str])] = &[
        ("zero layers", |c| drop(c.insert("num_hidden_layers".into(), json!(0))), &["field `num_hidden_layers` is 0"]),
        (
            "a negative head count",
            |c| drop(c.insert("num_attention_heads".into(), json!(-5))),
            &["field `num_attention_heads`: invalid value: integer `-5`"],
        ),
        (
            "a vocabulary given as text",
            |c| drop(c.insert("vocab_size".into(), json!("320"))),
            &["field `vocab_size`: invalid type: string"],
        ),
        ("no vocabulary size", |c| drop(c.remove("vocab_size")), &["missing field `vocab_size`"]),
        (
            "a hidden size the heads do not divide",
            |c| {
                c.remove("head_dim");
                c.insert("hidden_size".into(), json!(66));
            },
            &["hidden_size must be a multiple of num_attention_heads"],
        ),
        (
            "key/value heads that do not divide the heads",
            |c| drop(c.insert("num_key_value_heads".into(), json!(3))),
            &["num_attention_heads (4) must be a multiple of num_key_value_heads (3)"],
        ),
        ("an odd head dimension", |c| drop(c.insert("head_dim".into(), json!(15))), &["head_dim 15 must be even"]),
        ("an unsupported activation", |c| drop(c.insert("hidden_act".into(), json!("gelu"))), &["hidden_act `gelu` is not supported"]),
        (
            "an unsupported rope type",
            |c| drop(c.insert("rope_parameters".into(), json!({"rope_type": "yarn", "factor": 4.0}))),
            &["rope_scaling type `yarn`"],
        ),
        (
            "an unknown architecture",
            |c| drop(c.insert("model_type".into(), json!("gpt_neox"))),
            &["unsupported model_type `gpt_neox`", "llama, mistral, qwen2"],
        ),
        (
            "a zero norm epsilon",
            |c| drop(c.insert("rms_norm_eps".into(), json!(0.0))),
            &["field `rms_norm_eps` must be a small positive number"],
        ),
        ("no context length", |c| drop(c.insert("max_position_embeddings".into(), json!(0))), &["field `max_position_embeddings` is 0"]),
        (
            "a vocabulary smaller than the tokenizer's",
            |c| drop(c.insert("vocab_size".into(), json!(100))),
            &["tokenizer.json: the tokenizer has 320 tokens but the model's embedding has 100 rows"],
        ),
        (
            "an end-of-sequence id outside the vocabulary",
            |c| drop(c.insert("eos_token_id".into(), json!(5000))),
            &["end-of-sequence token id 5000 is outside the model's vocabulary of 320"],
        ),
    ];
    for (case, edit, expected) in cases {
        let sandbox = Sandbox::new();
        let model = sandbox.model();
        sandbox.edit_config(&model, *edit);
        let mut pieces = vec![s(&model)];
        pieces.extend(*expected);
        refused(&format!("generate: {case}"), &sandbox, &generate_args(&model), &pieces);
        let data = sandbox.write("d.jsonl", r#"{"prompt": "Hi ", "completion": "Hello."}"#);
        let run = sandbox.path("run");
        refused(&format!("train: {case}"), &sandbox, &train_args(&model, &data, &run), &pieces);
    }
}

#[test]
fn broken_model_files_are_named() {
    let sandbox = Sandbox::new();
    let missing = sandbox.path("no-model");
    refused("missing folder", &sandbox, &generate_args(&missing), &[s(&missing)]);
    let file = sandbox.write("model.bin", "not a folder");
    refused("a file as the model", &sandbox, &generate_args(&file), &[s(&file), "not a folder"]);

    type Break = fn(&std::path::Path);
    let cases: &[(&str, Break, &str, &str)] = &[
        ("no config.json", |m| std::fs::remove_file(m.join("config.json")).unwrap(), "", "no config.json"),
        (
            "config.json that is not JSON",
            |m| std::fs::write(m.join("config.json"), "{ oops").unwrap(),
            "config.json",
            "key must be a string",
        ),
        ("no tokenizer.json", |m| std::fs::remove_file(m.join("tokenizer.json")).unwrap(), "", "no tokenizer.json"),
        (
            "tokenizer.json that is not a tokenizer",
            |m| std::fs::write(m.join("tokenizer.json"), "{\"x\": 1}").unwrap(),
            "tokenizer.json",
            "",
        ),
        (
            "tokenizer_config.json that is not JSON",
            |m| std::fs::write(m.join("tokenizer_config.json"), "[").unwrap(),
            "tokenizer_config.json",
            "",
        ),
        (
            "truncated weights",
            |m| {
                let bytes = std::fs::read(m.join("model.safetensors")).unwrap();
                std::fs::write(m.join("model.safetensors"), &bytes[..bytes.len() / 2]).unwrap();
            },
            "model.safetensors",
            "truncated",
        ),
        (
            "weights that are not safetensors",
            |m| std::fs::write(m.join("model.safetensors"), [0xFFu8; 64]).unwrap(),
            "model.safetensors",
            "",
        ),
        ("no weights", |m| std::fs::remove_file(m.join("model.safetensors")).unwrap(), "", "safetensors"),
        (
            "a weight of the wrong shape",
            |m| {
                let path = m.join("config.json");
                let text = std::fs::read_to_string(&path).unwrap().replace("\"intermediate_size\": 128", "\"intermediate_size\": 96");
                std::fs::write(path, text).unwrap();
            },
            "",
            "has shape [128, 64], expected [96, 64]",
        ),
    ];
    for (case, break_it, file, expected) in cases {
        let sandbox = Sandbox::new();
        let model = sandbox.model();
        break_it(&model);
        let named = model.join(file);
        refused(case, &sandbox, &generate_args(&model), &[named.to_str().unwrap().trim_end_matches('/'), expected]);
    }
}

#[test]
fn a_missing_shard_of_a_sharded_model_is_named() {
    let sandbox = Sandbox::new();
    let model = sandbox.model_from("tiny-qwen2", "model");
    let shard = model.join("model-00003-of-00005.safetensors");
    std::fs::remove_file(&shard).unwrap();
    refused("missing shard", &sandbox, &generate_args(&model), &[s(&shard)]);
}

#[test]
fn a_token_the_embedding_has_no_row_for_is_refused_in_generate() {
    // An added token past the embedding's 320 rows (the tokenizer numbers it 320, after its
    // vocabulary): the tokenizer's vocabulary fits, the prompt does not.
    let sandbox = Sandbox::new();
    let model = sandbox.model();
    let path = model.join("tokenizer.json");
    let mut tokenizer: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    tokenizer["added_tokens"].as_array_mut().unwrap().push(json!({
        "id": 400, "content": "<|zorb|>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true
    }));
    std::fs::write(&path, tokenizer.to_string()).unwrap();
    let args = ["generate", "--model", s(&model), "--prompt", "<|zorb|>", "--no-chat-template", "--device", "cpu"];
    refused("added token past the embedding", &sandbox, &args, &["token id 320, outside the model's vocabulary of 320"]);
}

#[test]
fn adapters_that_do_not_fit_are_named() {
    type Break = fn(&std::path::Path);
    let cases: &[(&str, Break, &str)] = &[
        (
            "DoRA",
            |a| edit_json(&a.join("adapter_config.json"), |c| c["use_dora"] = json!(true)),
            "DoRA adapters (use_dora) are not supported",
        ),
        ("no rank", |a| edit_json(&a.join("adapter_config.json"), |c| drop(c.as_object_mut().unwrap().remove("r"))), "missing `r`"),
        ("a rank that does not match the tensors", |a| edit_json(&a.join("adapter_config.json"), |c| c["r"] = json!(3)), "has shape"),
        // Found by `wgtune-fuzz peft-config`: the factors were allocated at this rank (a TiB) and
        // the process aborted.
        (
            "a rank past the model's dimensions",
            |a| edit_json(&a.join("adapter_config.json"), |c| c["r"] = json!(4294967296u64)),
            "4294967296 is larger than q_proj's smaller dimension (64 × 64)",
        ),
        (
            "an unknown target module",
            |a| edit_json(&a.join("adapter_config.json"), |c| c["target_modules"] = json!(["qkv"])),
            "unknown module `qkv`",
        ),
        ("no weights", |a| std::fs::remove_file(a.join("adapter_model.safetensors")).unwrap(), "adapter_model.safetensors"),
    ];
    for (case, break_it, expected) in cases {
        let sandbox = Sandbox::new();
        let model = sandbox.model();
        let adapter = sandbox.path("adapter");
        std::fs::create_dir_all(&adapter).unwrap();
        for entry in std::fs::read_dir(crate::common::fixture("tiny-llama/adapter")).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), adapter.join(entry.file_name())).unwrap();
        }
        break_it(&adapter);
        let mut args = generate_args(&model);
        args.extend(["--trained", s(&adapter)]);
        refused(case, &sandbox, &args, &[s(&adapter), expected]);
    }
    let sandbox = Sandbox::new();
    let model = sandbox.model();
    let empty = sandbox.path("nothing-trained");
    std::fs::create_dir_all(&empty).unwrap();
    let mut args = generate_args(&model);
    args.extend(["--trained", s(&empty)]);
    refused("a folder with no trained weights", &sandbox, &args, &[s(&empty), "no adapter_config.json"]);
}

fn edit_json(path: &std::path::Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let mut value: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    edit(&mut value);
    std::fs::write(path, value.to_string()).unwrap();
}

/// An Ollama manifest is a file a stranger may have written (a shared models folder, a copied
/// store): a layer digest that is not `sha256:` and 64 hex digits never becomes a path, so
/// `sha256:../../../../etc/passwd` reads nothing outside the blobs folder; a model name that
/// would climb out of the store is refused the same way.
#[test]
fn an_ollama_manifest_cannot_point_outside_the_store() {
    let sandbox = Sandbox::new();
    let store = sandbox.path("ollama");
    let manifest = store.join("manifests/registry.ollama.ai/library/tiny/latest");
    std::fs::create_dir_all(manifest.parent().unwrap()).unwrap();
    std::fs::create_dir_all(store.join("blobs")).unwrap();
    for digest in ["sha256:../../../../etc/passwd", "sha256:0123", &format!("sha512:{}", "a".repeat(64))] {
        let layers = json!({"layers": [{"mediaType": "application/vnd.ollama.image.model", "digest": digest}]});
        std::fs::write(&manifest, layers.to_string()).unwrap();
        let args = ["generate", "--model", "ollama:tiny", "--prompt", "Hi", "--device", "cpu"];
        let expected = [s(&manifest), &format!("digest `{digest}` is not `sha256:` and 64 hexadecimal digits")];
        refused_with_env(digest, &sandbox, &args, &[("OLLAMA_MODELS", &store)], &expected);
    }
    for name in ["ollama:../../../etc", "ollama:tiny:../../x", "ollama:a/b/c"] {
        let args = ["generate", "--model", name, "--prompt", "Hi", "--device", "cpu"];
        refused_with_env(name, &sandbox, &args, &[("OLLAMA_MODELS", &store)], &["is not an Ollama model name"]);
    }
}
