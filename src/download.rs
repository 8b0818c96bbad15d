//! Models and datasets by Hugging Face id (`Qwen/Qwen3-0.6B`), downloaded with `hf-hub` into the
//! standard cache (`HF_HUB_CACHE`, `HF_HOME/hub` or `~/.cache/huggingface/hub`), from
//! `HF_ENDPOINT` (or huggingface.co), with `HF_TOKEN` for gated and private models. An
//! interrupted file resumes from its `.part` file on the next try, and a file whose bytes do not
//! hash to what the Hub names it by is deleted and reported.

use std::io::Read;
use std::path::{Path, PathBuf};

use hf_hub::api::Progress;
use hf_hub::api::sync::{ApiBuilder, ApiError, ApiRepo};
use hf_hub::{Cache, Repo, RepoType};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// The files a model folder needs besides its weights; those the repository lacks are skipped.
const SIDE_FILES: [&str; 6] =
    ["config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja"];

/// Which Hub to download from, into which cache, as whom.
#[derive(Clone, Debug)]
pub struct Hub {
    pub endpoint: String,
    /// The cache's `hub` folder (see [`crate::hub::cache_dir`]).
    pub cache: PathBuf,
    pub token: Option<String>,
}

impl Hub {
    /// `HF_ENDPOINT`, the cache [`crate::hub::cache_dir`] names, and `HF_TOKEN` (or the token
    /// `huggingface-cli login` saved).
    pub fn from_env() -> Self {
        let cache = crate::hub::cache_dir().unwrap_or_else(|| PathBuf::from(".cache/huggingface/hub"));
        let token = std::env::var("HF_TOKEN").ok().filter(|t| !t.is_empty()).or_else(|| Cache::new(cache.clone()).token());
        Self { endpoint: std::env::var("HF_ENDPOINT").unwrap_or_else(|_| "https://huggingface.co".into()), cache, token }
    }

    /// Where `repo` sits in the cache.
    fn cached(&self, repo: &Repo) -> PathBuf {
        self.cache.join(repo.folder_name())
    }
}

/// A repository on the Hub through hf-hub, and how its errors are named.
struct Remote<'a> {
    repo: ApiRepo,
    /// `model` or `dataset`.
    what: &'static str,
    id: &'a str,
    endpoint: &'a str,
}

impl<'a> Remote<'a> {
    /// hf-hub's handle on `repo`: no terminal bar of its own (the caller shows progress), no
    /// retries (a cut download resumes on the next call instead).
    fn open(hub: &'a Hub, repo: Repo, what: &'static str, id: &'a str) -> Result<Self> {
        let api = ApiBuilder::from_cache(Cache::new(hub.cache.clone()))
            .with_endpoint(hub.endpoint.clone())
            .with_token(hub.token.clone())
            .with_progress(false)
            .with_retries(0)
            .build()
            .map_err(|e| hub_error(what, id, &hub.endpoint, e))?;
        Ok(Self { repo: api.repo(repo), what, id, endpoint: &hub.endpoint })
    }

    /// The paths of the repository's files.
    fn files(&self) -> Result<Vec<String>> {
        let info = self.repo.info().map_err(|e| hub_error(self.what, self.id, self.endpoint, e))?;
        Ok(info.siblings.into_iter().map(|s| s.rfilename).collect())
    }

    /// Downloads `file`, its progress forwarded to `progress`, and checks its bytes against the
    /// hash the Hub names it by (see [`verify_hash`]).
    fn fetch(&self, file: &str, state: &mut DownloadProgress, progress: &mut impl FnMut(&DownloadProgress)) -> Result<PathBuf> {
        // Names come from the repository (its listing, its weight index): one that would land
        // outside the cache is refused before anything is written.
        if !crate::fsutil::stays_inside(file) {
            return Err(Error::Download {
                what: self.what,
                id: self.id.into(),
                message: format!("the repository names a file `{file}` outside its own folder (an absolute path or `..`): refused"),
            });
        }
        struct Forward<'a, F: FnMut(&DownloadProgress)> {
            state: &'a mut DownloadProgress,
            progress: &'a mut F,
        }
        impl<F: FnMut(&DownloadProgress)> Progress for Forward<'_, F> {
            fn init(&mut self, size: usize, _: &str) {
                (self.state.total, self.state.bytes) = (size as u64, 0);
                (self.progress)(self.state);
            }
            fn update(&mut self, size: usize) {
                self.state.bytes += size as u64;
                (self.progress)(self.state);
            }
            fn finish(&mut self) {}
        }
        let path = self
            .repo
            .download_with_progress(file, Forward { state, progress })
            .map_err(|e| hub_error(self.what, self.id, self.endpoint, e))?;
        verify_hash(self.what, self.id, file, &path)?;
        Ok(path)
    }
}

/// Where a download stands, for a progress bar.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DownloadProgress {
    /// The file being downloaded.
    pub file: String,
    /// Its index among the files to download, from 1, and how many there are.
    pub index: usize,
    pub files: usize,
    pub bytes: u64,
    pub total: u64,
}

/// Downloads what a model folder needs (the side files, then `model.safetensors` or the index and
/// its shards) and returns the snapshot folder. Files already in the cache are not fetched again.
pub fn download_model(id: &str, hub: &Hub, mut progress: impl FnMut(&DownloadProgress)) -> Result<PathBuf> {
    let remote = Remote::open(hub, Repo::model(id.to_string()), "model", id)?;
    let listed = remote.files()?;
    let available: Vec<&str> = listed.iter().map(String::as_str).collect();
    let weights = ["model.safetensors", "model.safetensors.index.json"].into_iter().find(|f| available.contains(f)).ok_or_else(|| {
        Error::Download {
            what: "model",
            id: id.into(),
            message: "the repository has no safetensors weights (model.safetensors or model.safetensors.index.json)".into(),
        }
    })?;
    if !available.contains(&"config.json") {
        return Err(Error::Download {
            what: "model",
            id: id.into(),
            message: "the repository has no config.json: not a transformers model".into(),
        });
    }
    // The side files and the weights (or their index, which names the shards to fetch next).
    let mut files: Vec<String> = SIDE_FILES.iter().filter(|f| available.contains(f)).map(|f| f.to_string()).collect();
    files.push(weights.to_string());
    let cached = Cache::new(hub.cache.clone()).repo(Repo::model(id.to_string()));
    let mut snapshot = None;
    let mut i = 0;
    while i < files.len() {
        let file = files[i].clone();
        let mut state = DownloadProgress { file: file.clone(), index: i + 1, files: files.len(), bytes: 0, total: 0 };
        progress(&state);
        let path = match cached.get(&file) {
            // Already here (checked when it came): shown as done.
            Some(path) => {
                state.total = std::fs::metadata(&path).map_or(0, |m| m.len());
                state.bytes = state.total;
                progress(&state);
                path
            }
            None => remote.fetch(&file, &mut state, &mut progress)?,
        };
        if file == "model.safetensors.index.json" {
            files.extend(index_shards(id, &path)?);
        }
        snapshot = path.parent().map(Path::to_path_buf);
        i += 1;
    }
    snapshot.ok_or_else(|| Error::Download { what: "model", id: id.into(), message: "nothing was downloaded".into() })
}

/// The shard files `model.safetensors.index.json` names, each once, in order.
fn index_shards(id: &str, index: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(index).map_err(|e| Error::io(index, e))?;
    let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| Error::invalid_file(index, e.to_string()))?;
    let map = json.get("weight_map").and_then(|m| m.as_object()).ok_or_else(|| Error::Download {
        what: "model",
        id: id.into(),
        message: "model.safetensors.index.json has no `weight_map`".into(),
    })?;
    let shards: std::collections::BTreeSet<String> = map.values().filter_map(|v| v.as_str().map(str::to_string)).collect();
    Ok(shards.into_iter().collect())
}

/// Model ids on the Hub matching `query`, most downloaded first (at most 20): the app's search.
pub fn search_models(query: &str, hub: &Hub) -> Result<Vec<String>> {
    let failed = |message: String| Error::Download { what: "search", id: format!("`{query}`"), message };
    let mut request = ureq::get(format!("{}/api/models", hub.endpoint))
        .query("search", query)
        .query("sort", "downloads")
        .query("direction", "-1")
        .query("limit", "20");
    if let Some(token) = &hub.token {
        request = request.header("Authorization", format!("Bearer {token}"));
    }
    let text = request
        .call()
        .and_then(|mut response| response.body_mut().read_to_string())
        .map_err(|e| failed(format!("could not reach {}: {e}", hub.endpoint)))?;
    let found: Vec<serde_json::Value> =
        serde_json::from_str(&text).map_err(|e| failed(format!("an answer that is not a list of models: {e}")))?;
    Ok(found.iter().filter_map(|m| m.get("id").or_else(|| m.get("modelId")).and_then(|id| id.as_str()).map(str::to_string)).collect())
}

/// The Hub names a file's blob by a hash of its bytes: an LFS file (weights, Parquet) by their
/// sha256, any other by its git blob hash (sha1 of `blob LEN\0` and the bytes). A file whose
/// bytes hash to something else is deleted (blob and snapshot link), so that the next try
/// fetches it whole.
fn verify_hash(what: &'static str, id: &str, file: &str, path: &Path) -> Result<()> {
    let blob = std::fs::canonicalize(path).map_err(|e| Error::io(path, e))?;
    let expected = blob.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
    if !expected.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(()); // A name that is no hash: nothing to check against.
    }
    let size = std::fs::metadata(&blob).map_err(|e| Error::io(&blob, e))?.len();
    let actual = match expected.len() {
        64 => hash_file::<Sha256>(&blob, &[])?,
        40 => hash_file::<sha1::Sha1>(&blob, format!("blob {size}\0").as_bytes())?,
        _ => return Ok(()),
    };
    if actual == expected {
        return Ok(());
    }
    let _ = std::fs::remove_file(path);
    let _ = std::fs::remove_file(&blob);
    Err(Error::Download {
        what,
        id: id.into(),
        message: format!("{file} arrived corrupt (its bytes hash to {actual}, the Hub names {expected}); it was deleted, try again"),
    })
}

/// The hex digest of `prefix` then the file's bytes.
fn hash_file<D: Digest>(path: &Path, prefix: &[u8]) -> Result<String> {
    let mut hasher = D::new();
    hasher.update(prefix);
    let mut reader = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let n = reader.read(&mut buffer).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
    }
    Ok(hasher.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// The Hub's answer, for people: a missing model, a gated one, or the network.
fn hub_error(what: &'static str, id: &str, endpoint: &str, error: ApiError) -> Error {
    let message = match &error {
        ApiError::RequestError(e) => match e.as_ref() {
            ureq::Error::StatusCode(401 | 403) => {
                format!("the Hub refused access (401/403): the {what} is gated or private; accept its terms on its page and set HF_TOKEN")
            }
            ureq::Error::StatusCode(404) => format!("no such {what} on {endpoint} (404); check the id"),
            ureq::Error::StatusCode(code) => format!("the Hub answered {code}"),
            other => format!("could not reach {endpoint}: {other} (models already in the cache open offline)"),
        },
        other => other.to_string(),
    };
    Error::Download { what, id: id.into(), message }
}

/// The data file of one split of a dataset on the Hub (`--data owner/name --split train
/// [--subset NAME]`), from the cache or downloaded into it. A split is found by its folder
/// (`SUBSET/train/0000.parquet`) or its file name (`data/train-00000-of-00001.parquet`,
/// `train.parquet`), under the subset's folder when one is named. A split of one Parquet file is
/// that file; one of several shards is their records joined in order into one JSONL file beside
/// the cached snapshots, so that it reads as one file.
pub fn download_dataset(
    id: &str,
    subset: Option<&str>,
    split: &str,
    hub: &Hub,
    mut progress: impl FnMut(&DownloadProgress),
) -> Result<PathBuf> {
    let repo = Repo::new(id.to_string(), RepoType::Dataset);
    let joined = hub.cached(&repo).join("wgtune-joined").join(format!("{}-{split}.jsonl", subset.unwrap_or("default")));
    let cached = cached_dataset_files(&hub.cached(&repo));
    let cached_names: Vec<&str> = cached.iter().map(|(name, _)| name.as_str()).collect();
    if let Ok(files) = split_files(id, &cached_names, subset, split) {
        match files.as_slice() {
            [one] => return Ok(cached.iter().find(|(name, _)| name == one).map(|(_, path)| path.clone()).unwrap_or_default()),
            _ if joined.exists() => return Ok(joined),
            _ => {}
        }
    }
    let remote = Remote::open(hub, repo, "dataset", id)?;
    let listed = remote.files()?;
    let shards = split_files(id, &listed.iter().map(String::as_str).collect::<Vec<_>>(), subset, split)?;
    let mut paths = Vec::with_capacity(shards.len());
    for (i, file) in shards.iter().enumerate() {
        let mut state = DownloadProgress { file: file.clone(), index: i + 1, files: shards.len(), bytes: 0, total: 0 };
        progress(&state);
        paths.push(remote.fetch(file, &mut state, &mut progress)?);
    }
    match paths.as_slice() {
        [one] => Ok(one.clone()),
        _ => join_shards(&paths, &joined).map(|()| joined),
    }
}

/// Writes every record of `shards`, in order, as one JSONL file `out` (through a temporary file,
/// so that a cut write leaves nothing half there). A record that cannot be read stops it, named
/// by its shard and row.
fn join_shards(shards: &[PathBuf], out: &Path) -> Result<()> {
    use std::io::Write;
    let parent = out.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    let partial = out.with_extension("jsonl.part");
    let file = std::fs::File::create(&partial).map_err(|e| Error::io(&partial, e))?;
    let mut writer = std::io::BufWriter::new(file);
    let max_record_bytes = crate::data::DataConfig::default().max_record_bytes();
    for shard in shards {
        crate::data::for_each_record(shard, max_record_bytes, |item| {
            let record =
                item.map_err(|problem| Error::InvalidRecord { path: shard.clone(), line: problem.line, message: problem.message })?;
            let line = serde_json::to_string(&record.fields).unwrap_or_default();
            writeln!(writer, "{line}").map_err(|e| Error::io(&partial, e))
        })?;
    }
    writer.flush().map_err(|e| Error::io(&partial, e))?;
    std::fs::rename(&partial, out).map_err(|e| Error::io(out, e))
}

/// The Parquet files among `files` (paths in the repository) that hold `split`, in order.
fn split_files(id: &str, files: &[&str], subset: Option<&str>, split: &str) -> Result<Vec<String>> {
    let parquet: Vec<&str> = files.iter().copied().filter(|f| f.ends_with(".parquet")).collect();
    let in_subset = |f: &&str| subset.is_none_or(|s| f.starts_with(&format!("{s}/")));
    let of_split = |f: &&str| {
        let mut parts: Vec<&str> = f.split('/').collect();
        let name = parts.pop().unwrap_or_default();
        let stem = name.trim_end_matches(".parquet");
        parts.contains(&split) || stem == split || stem.starts_with(&format!("{split}-"))
    };
    let mut found: Vec<String> = parquet.iter().copied().filter(in_subset).filter(of_split).map(str::to_string).collect();
    found.sort();
    // Shards of one split share a folder; the same split name in two folders is two subsets.
    let folders: std::collections::BTreeSet<&str> = found.iter().map(|f| f.rsplit_once('/').map_or("", |(dir, _)| dir)).collect();
    if folders.len() > 1 {
        let folders: Vec<&str> = folders.into_iter().collect();
        return Err(Error::Download {
            what: "dataset",
            id: id.into(),
            message: format!("split `{split}` is in {} folders ({}): choose one with --subset", folders.len(), folders.join(", ")),
        });
    }
    if found.is_empty() {
        let listed: Vec<&str> = parquet.iter().copied().take(12).collect();
        let subset = subset.map(|s| format!(" in subset `{s}`")).unwrap_or_default();
        let message = match listed.is_empty() {
            true => "the repository holds no Parquet files".to_string(),
            false => format!("no Parquet file for split `{split}`{subset} (--split, --subset); it holds {}", listed.join(", ")),
        };
        return Err(Error::Download { what: "dataset", id: id.into(), message });
    }
    Ok(found)
}

/// A dataset's Parquet files in the newest snapshot of its cache folder `cached`: (path in the
/// repository, local path).
fn cached_dataset_files(cached: &Path) -> Vec<(String, PathBuf)> {
    let newest = crate::hub::newest_snapshot(&cached.join("snapshots"), |_| true);
    let mut out = Vec::new();
    let mut pending: Vec<PathBuf> = newest.iter().cloned().collect();
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if let (Some(root), true) = (&newest, path.extension().is_some_and(|e| e == "parquet")) {
                let relative = path.strip_prefix(root).map(|p| p.to_string_lossy().replace('\\', "/")).unwrap_or_default();
                out.push((relative, path));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_split_is_found_by_its_folder_or_its_name() {
        let files =
            ["README.md", "data/train-00001-of-00002.parquet", "data/train-00000-of-00002.parquet", "data/test-00000-of-00001.parquet"];
        assert_eq!(
            split_files("o/d", &files, None, "train").unwrap(),
            ["data/train-00000-of-00002.parquet", "data/train-00001-of-00002.parquet"]
        );
        let files = ["main/train/0000.parquet", "main/test/0000.parquet", "extra/train/0000.parquet"];
        assert_eq!(split_files("o/d", &files, Some("extra"), "train").unwrap(), ["extra/train/0000.parquet"]);
        let err = split_files("o/d", &files, None, "train").unwrap_err().to_string();
        assert!(err.contains("split `train` is in 2 folders (extra/train, main/train): choose one with --subset"), "{err}");
        let err = split_files("o/d", &files, None, "validation").unwrap_err().to_string();
        assert!(err.starts_with("dataset o/d: no Parquet file for split `validation`") && err.contains("main/test/0000.parquet"), "{err}");
    }
}
