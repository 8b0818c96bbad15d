//! Finding models: a folder path, or a model id already downloaded into the local Hugging Face
//! cache (`~/.cache/huggingface/hub`, or `$HF_HUB_CACHE` / `$HF_HOME/hub`). Nothing is downloaded.

use std::path::{Path, PathBuf};

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

/// A folder as given, or the newest cached snapshot of a model id (`owner/name`).
pub fn resolve_model(spec: &Path) -> Result<PathBuf> {
    if spec.is_dir() {
        return Ok(spec.to_path_buf());
    }
    let id = spec.to_string_lossy();
    if let Some(found) = cached_models().into_iter().find(|m| m.id == id) {
        return Ok(found.path);
    }
    Err(Error::invalid_file(spec, "not a model folder, nor a model id found in the local Hugging Face cache"))
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
            let snapshot = newest_snapshot(&entry.path().join("snapshots"))?;
            Some(CachedModel { id, path: snapshot })
        })
        .collect();
    models.sort_by(|a, b| a.id.cmp(&b.id));
    models
}

fn newest_snapshot(snapshots: &Path) -> Option<PathBuf> {
    std::fs::read_dir(snapshots)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.join("config.json").exists() && (p.join("model.safetensors").exists() || p.join("model.safetensors.index.json").exists())
        })
        .max_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
}
