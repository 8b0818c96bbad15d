//! Finding models: a folder path, a GGUF file, an installed Ollama model, or a Hugging Face model
//! id: from the local cache (`~/.cache/huggingface/hub`, or `$HF_HUB_CACHE` / `$HF_HOME/hub`) when
//! it is there, downloaded into it otherwise (see [`crate::download`]).

use std::path::{Path, PathBuf};

use crate::download::DownloadProgress;
use crate::error::{Error, Result};

/// A model found in the local cache.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CachedModel {
    pub id: String,
    pub path: PathBuf,
}

pub fn cache_dir() -> Option<PathBuf> {
    if let Ok(dir) = std::env::var("HF_HUB_CACHE") {
        return Some(PathBuf::from(dir));
    }
    if let Ok(home) = std::env::var("HF_HOME") {
        return Some(PathBuf::from(home).join("hub"));
    }
    std::env::var("HOME").ok().map(|h| PathBuf::from(h).join(".cache/huggingface/hub"))
}

/// [`resolve_model_with`], downloading without showing progress.
pub fn resolve_model(spec: &Path) -> Result<PathBuf> {
    resolve_model_with(spec, |_| {})
}

/// A folder or file as given, an installed Ollama model (`ollama:NAME`), or a model id
/// (`owner/name`): its newest cached snapshot, or one downloaded now with `progress`.
pub fn resolve_model_with(spec: &Path, progress: impl FnMut(&DownloadProgress)) -> Result<PathBuf> {
    // A folder, or a file (a GGUF model; anything else is named as such when opened).
    if spec.exists() {
        return Ok(spec.to_path_buf());
    }
    let id = spec.to_string_lossy();
    if let Some(name) = id.strip_prefix("ollama:") {
        return ollama_model(name, &ollama_dir());
    }
    if let Some(found) = cached_models().into_iter().find(|m| m.id == id) {
        return Ok(found.path);
    }
    if is_hub_id(&id) {
        return crate::download::download_model(&id, &crate::download::Hub::from_env(), progress);
    }
    Err(Error::invalid_file(spec, "not a model folder, a .gguf file, ollama:NAME, nor a Hugging Face model id (owner/name)"))
}

/// A data file as given, or the Parquet file of `split` (under `subset`) of a dataset on the Hub
/// (`owner/name`), from the cache or downloaded now with `progress`.
pub fn resolve_dataset_with(spec: &Path, subset: Option<&str>, split: &str, progress: impl FnMut(&DownloadProgress)) -> Result<PathBuf> {
    let id = spec.to_string_lossy();
    if spec.exists() || !is_hub_id(&id) {
        return Ok(spec.to_path_buf());
    }
    crate::download::download_dataset(&id, subset, split, &crate::download::Hub::from_env(), progress)
}

/// Whether `text` reads as a Hub id (a model's or a dataset's): `owner/name` of letters, digits,
/// `-`, `_` and `.`, and not a file wgtune reads (a missing `data/train.jsonl` is a missing file).
pub fn is_hub_id(text: &str) -> bool {
    const FILE_TYPES: [&str; 6] = [".jsonl", ".json", ".csv", ".parquet", ".gguf", ".toml"];
    let part = |p: &str| !p.is_empty() && !p.starts_with('.') && p.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    let lower = text.to_ascii_lowercase();
    let file = FILE_TYPES.iter().any(|t| lower.ends_with(t));
    !file && matches!(text.split_once('/'), Some((owner, name)) if part(owner) && part(name))
}

/// Models in the local cache that have a `config.json` and safetensors weights.
pub fn cached_models() -> Vec<CachedModel> {
    let Some(dir) = cache_dir() else { return Vec::new() };
    let Ok(entries) = std::fs::read_dir(&dir) else { return Vec::new() };
    let mut models: Vec<CachedModel> = entries
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().to_string();
            let id = name.strip_prefix("models--")?.replacen("--", "/", 1);
            let has_model = |p: &Path| {
                p.join("config.json").exists() && (p.join("model.safetensors").exists() || p.join("model.safetensors.index.json").exists())
            };
            let snapshot = newest_snapshot(&entry.path().join("snapshots"), has_model)?;
            Some(CachedModel { id, path: snapshot })
        })
        .collect();
    models.sort_by(|a, b| a.id.cmp(&b.id));
    models
}

/// The most recently written of the snapshot folders under `snapshots` that `accept` takes.
pub(crate) fn newest_snapshot(snapshots: &Path, accept: impl Fn(&Path) -> bool) -> Option<PathBuf> {
    std::fs::read_dir(snapshots)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| accept(p))
        .max_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
}

/// The file name Ollama gives the blob of a layer digest, `sha256-` and its 64 hex digits; `None`
/// for any other digest (a manifest is a file a stranger may have written: its digest must not
/// turn into a path outside the blobs folder).
fn blob_name(digest: &str) -> Option<String> {
    let hex = digest.strip_prefix("sha256:")?;
    (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())).then(|| format!("sha256-{hex}"))
}

/// Ollama's model store: `OLLAMA_MODELS`, or `~/.ollama/models`.
fn ollama_dir() -> PathBuf {
    std::env::var_os("OLLAMA_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default().join(".ollama/models"))
}

/// The GGUF blob of an installed Ollama model `NAME[:TAG]` (tag `latest` by default): its
/// manifest's layer of type `application/vnd.ollama.image.model`.
pub fn ollama_model(name: &str, store: &Path) -> Result<PathBuf> {
    let (name, tag) = name.split_once(':').unwrap_or((name, "latest"));
    // `qwen2.5` is `library/qwen2.5`; `user/model` is under its namespace.
    let (namespace, model) = name.split_once('/').unwrap_or(("library", name));
    // Each part becomes a folder name: nothing that could climb out of the store.
    let part = |p: &str| !p.is_empty() && !p.starts_with('.') && p.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if ![namespace, model, tag].into_iter().all(part) {
        return Err(Error::setting(
            "model",
            format!(
                "`ollama:{name}:{tag}` is not an Ollama model name (NAME, NAME:TAG or NAMESPACE/NAME:TAG, of letters, digits, `-`, `_` and `.`)"
            ),
        ));
    }
    let manifest = store.join("manifests/registry.ollama.ai").join(namespace).join(model).join(tag);
    let text = std::fs::read_to_string(&manifest).map_err(|_| {
        Error::invalid_file(&manifest, format!("Ollama model `{name}:{tag}` is not installed (run `ollama pull {name}:{tag}`)"))
    })?;
    let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| Error::invalid_file(&manifest, e.to_string()))?;
    let digest = json
        .get("layers")
        .and_then(|l| l.as_array())
        .and_then(|layers| {
            layers.iter().find(|l| l.get("mediaType").and_then(|m| m.as_str()) == Some("application/vnd.ollama.image.model"))
        })
        .and_then(|layer| layer.get("digest")?.as_str())
        .ok_or_else(|| Error::invalid_file(&manifest, "no model layer (application/vnd.ollama.image.model) in this manifest"))?;
    let blob = store.join("blobs").join(blob_name(digest).ok_or_else(|| {
        Error::invalid_file(&manifest, format!("the model layer's digest `{digest}` is not `sha256:` and 64 hexadecimal digits"))
    })?);
    if !blob.is_file() {
        return Err(Error::invalid_file(&blob, format!("the weights of Ollama model `{name}:{tag}` are missing")));
    }
    Ok(blob)
}
