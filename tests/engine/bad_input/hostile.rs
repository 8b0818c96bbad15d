//! Files written to hurt, as a stranger's model folder or GGUF file may hold them: each is refused
//! quickly, naming the file, the field and the bound, before anything is sized from it.

use super::harness::{Sandbox, generate_args, refused, s, text, wgtune};
use crate::download::hub_stand_in::{Behaviour, ESCAPING, StandIn};

/// Chat templates that would double a string to a terabyte, or loop 10⁹ times, stop on the
/// renderer's budget (each ran for minutes or took gigabytes before it).
#[test]
fn chat_template_bombs_stop_on_their_budget() {
    let bombs = [
        ("doubling", "{% set ns = namespace(s='ab') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}"),
        ("looping", "{% for i in range(100000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}"),
    ];
    for (case, template) in bombs {
        let sandbox = Sandbox::new();
        let model = sandbox.model();
        let jinja = sandbox.write("model/chat_template.jinja", template);
        refused(case, &sandbox, &generate_args(&model), &[s(&jinja), "rendering stopped", "1000000 steps or 64 MB of text"]);
    }
}

/// A GGUF header of `tensor_count` tensors (none described) and `metadata` (key, type, value bytes).
fn gguf(tensor_count: u64, metadata: &[(&str, u32, Vec<u8>)]) -> Vec<u8> {
    let mut bytes = b"GGUF".to_vec();
    bytes.extend(3u32.to_le_bytes());
    bytes.extend(tensor_count.to_le_bytes());
    bytes.extend((metadata.len() as u64).to_le_bytes());
    for (key, kind, value) in metadata {
        bytes.extend((key.len() as u64).to_le_bytes());
        bytes.extend(key.as_bytes());
        bytes.extend(kind.to_le_bytes());
        bytes.extend(value);
    }
    bytes.extend([0u8; 64]);
    bytes
}

/// An array's value bytes: its item type, its claimed length, then `items`.
fn array(item_kind: u32, claimed_len: u64, items: &[u8]) -> Vec<u8> {
    [&item_kind.to_le_bytes()[..], &claimed_len.to_le_bytes(), items].concat()
}

#[test]
fn gguf_counts_and_sizes_are_bounded_by_the_file() {
    const STRING: u32 = 8;
    const ARRAY: u32 = 9;
    const U32: u32 = 4;
    let cases: Vec<(&str, Vec<u8>, Vec<&str>)> = vec![
        (
            "a vocabulary longer than the file",
            gguf(0, &[("tokenizer.ggml.tokens", ARRAY, array(STRING, 1_000_000, &[]))]),
            vec!["metadata `tokenizer.ggml.tokens`", "array length of 1000000 does not fit in the file (at least 8000000 bytes"],
        ),
        (
            "an array past any real one",
            gguf(0, &[("tokenizer.ggml.scores", ARRAY, array(U32, 1 << 40, &[]))]),
            vec!["metadata `tokenizer.ggml.scores`", "array length of 1099511627776 is past the bound of 16777216"],
        ),
        ("an array of arrays", gguf(0, &[("a.b", ARRAY, array(ARRAY, 1, &[]))]), vec!["metadata `a.b`", "an array of arrays"]),
        ("a tensor table longer than the file", gguf(1 << 20, &[]), vec!["tensor count of 1048576 does not fit in the file"]),
        (
            "a string longer than the file",
            gguf(0, &[("general.name", STRING, u64::MAX.to_le_bytes().to_vec())]),
            vec!["metadata `general.name`", "the GGUF header ends early"],
        ),
        (
            "an alignment that is not a power of two",
            gguf(0, &[("general.alignment", U32, 3u32.to_le_bytes().to_vec())]),
            vec!["metadata `general.alignment` is 3: it must be a power of two up to 65536"],
        ),
    ];
    for (case, bytes, expected) in cases {
        let sandbox = Sandbox::new();
        let file = sandbox.write("model.gguf", bytes);
        let mut pieces = vec![s(&file)];
        pieces.extend(expected);
        refused(case, &sandbox, &["inspect", "--model", s(&file)], &pieces);
    }
}

#[test]
fn a_config_past_any_real_model_or_its_weights_is_refused() {
    let sandbox = Sandbox::new();
    let model = sandbox.model();
    let config = model.join("config.json");
    sandbox.edit_config(&model, |c| drop(c.insert("hidden_size".into(), serde_json::json!(1u64 << 30))));
    refused("a hidden size of 2³⁰", &sandbox, &generate_args(&model), &[s(&config), "field `hidden_size` is 1073741824, past the 262144"]);

    let sandbox = Sandbox::new();
    let model = sandbox.model();
    let config = model.join("config.json");
    sandbox.edit_config(&model, |c| drop(c.insert("num_hidden_layers".into(), serde_json::json!(4000))));
    refused(
        "4,000 layers over two layers' weights",
        &sandbox,
        &generate_args(&model),
        &[s(&config), "the configuration describes", "num_hidden_layers 4000", "it does not belong to these weights"],
    );
}

/// A weight index whose shard lies outside the model's folder is not followed.
#[test]
fn a_weight_index_cannot_point_outside_the_folder() {
    let sandbox = Sandbox::new();
    let model = sandbox.model();
    std::fs::rename(model.join("model.safetensors"), sandbox.path("elsewhere.safetensors")).unwrap();
    let index =
        sandbox.write("model/model.safetensors.index.json", r#"{"weight_map": {"model.embed_tokens.weight": "../elsewhere.safetensors"}}"#);
    refused("a shard in ..", &sandbox, &generate_args(&model), &[s(&index), "`../elsewhere.safetensors` outside the model's folder"]);
}

/// A `tokenizer.json` past any real one's size is refused by its size, before it is read (a
/// sparse file: it takes no disk).
#[test]
fn an_oversized_tokenizer_is_refused_before_it_is_read() {
    let sandbox = Sandbox::new();
    let model = sandbox.model();
    let tokenizer = model.join("tokenizer.json");
    std::fs::OpenOptions::new().write(true).open(&tokenizer).unwrap().set_len(300 << 20).unwrap();
    let out = wgtune(&generate_args(&model));
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(s(&tokenizer)) && stderr.contains("the file is 314572800 bytes, past the 268435456 bytes"), "{stderr}");
}

/// A repository whose listing names a file outside itself (`../../../escaped/…`) is refused
/// before anything is asked for or written: nothing lands outside the cache, or in it.
#[test]
fn a_listed_file_outside_the_repository_is_refused() {
    let hub = StandIn::start(Behaviour::default());
    let root = tempfile::tempdir().unwrap();
    let cache = root.path().join("a/b/c/cache");
    let settings = hub.hub(&cache, None);
    let err = wgtune::download::download_dataset("owner/escape", None, "train", &settings, |_| {}).unwrap_err().to_string();
    assert!(err.contains("dataset owner/escape") && err.contains(ESCAPING) && err.contains("outside its own folder"), "{err}");
    assert!(!hub.requests().iter().any(|r| r.contains("escaped")), "{:?}", hub.requests());
    let written: Vec<_> = walk(root.path()).into_iter().filter(|p| p.is_file()).collect();
    assert!(written.is_empty(), "{written:?}");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        out.push(entry.path());
        if entry.path().is_dir() {
            out.extend(walk(&entry.path()));
        }
    }
    out
}
