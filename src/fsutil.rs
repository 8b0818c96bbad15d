//! Writing files and folders so that a crash never leaves a half-written one in place, a failed
//! write leaves nothing behind, and nothing the user has is replaced without being asked.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Whether `name`, a relative path a stranger's file gives (a Hub repository's listing, a weight
/// index's shard), stays inside the folder it is joined to: no root, drive or `..`, and no
/// backslash, which Windows reads as a separator.
pub fn stays_inside(name: &str) -> bool {
    !name.is_empty()
        && !name.contains('\\')
        && Path::new(name).components().all(|c| matches!(c, std::path::Component::Normal(_) | std::path::Component::CurDir))
}

/// Reads a text file of a model folder, refusing one past `limit` bytes before reading it: model
/// folders come from strangers, and every such file of a real model is far smaller.
pub fn read_text_bounded(path: &Path, limit: u64) -> Result<String> {
    let size = std::fs::metadata(path).map_err(|e| Error::io(path, e))?.len();
    if size > limit {
        return Err(Error::invalid_file(
            path,
            format!("the file is {size} bytes, past the {limit} bytes any model's file of this kind needs"),
        ));
    }
    std::fs::read_to_string(path).map_err(|e| Error::io(path, e))
}

/// Writes `bytes` to a temporary file beside `path`, then renames it over `path` (see
/// [`write_file_with`]).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_file_with(path, |out, tmp| out.write_all(bytes).map_err(|e| Error::io(tmp, e)))
}

/// Writes the file `path` through `fill` (given the writer and the temporary file's path, for its
/// errors) into a temporary file beside it, then syncs it and renames it into place. A failure (a
/// full disk, a tensor that cannot be encoded) removes the temporary file.
pub fn write_file_with(path: &Path, fill: impl FnOnce(&mut BufWriter<File>, &Path) -> Result<()>) -> Result<()> {
    let tmp = partial_path(path);
    let written = (|| {
        let mut out = BufWriter::new(File::create(&tmp).map_err(|e| Error::io(&tmp, e))?);
        fill(&mut out, &tmp)?;
        let file = out.into_inner().map_err(|e| Error::io(&tmp, e.into_error()))?;
        file.sync_all().map_err(|e| Error::io(&tmp, e))?;
        std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// A folder being filled beside its target, then [`Staging::publish`]ed in one rename. Dropped
/// unpublished (an error, a panic), it removes itself, so a failed write leaves nothing behind.
pub struct Staging {
    path: PathBuf,
    target: PathBuf,
    published: bool,
}

impl Staging {
    /// A fresh, empty staging folder beside `target`; a leftover one from an interrupted write
    /// is removed first.
    pub fn new(target: &Path) -> Result<Self> {
        let path = partial_path(target);
        if path.exists() {
            std::fs::remove_dir_all(&path).map_err(|e| Error::io(&path, e))?;
        }
        std::fs::create_dir_all(&path).map_err(|e| Error::io(&path, e))?;
        Ok(Self { path, target: target.to_path_buf(), published: false })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn join(&self, name: impl AsRef<Path>) -> PathBuf {
        self.path.join(name)
    }

    /// Moves the filled folder to its target, replacing whatever was there (callers check with
    /// [`check_target`] first that replacing it was asked for).
    pub fn publish(mut self) -> Result<()> {
        let (staging, target) = (&self.path, &self.target);
        let old = sibling(target, ".old");
        // Left by a publish interrupted after its first rename: the target it replaced.
        if old.exists() {
            std::fs::remove_dir_all(&old).map_err(|e| Error::io(&old, e))?;
        }
        if target.exists() {
            std::fs::rename(target, &old).map_err(|e| Error::io(target, e))?;
            std::fs::rename(staging, target).map_err(|e| Error::io(target, e))?;
            self.published = true;
            std::fs::remove_dir_all(&old).map_err(|e| Error::io(&old, e))
        } else {
            std::fs::rename(staging, target).map_err(|e| Error::io(target, e))?;
            self.published = true;
            Ok(())
        }
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.published {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// Whether `dir` holds anything.
pub fn is_non_empty_dir(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_some())
}

/// Refuses an output folder whose writing would replace something the user has: a file, a
/// non-empty folder unless `overwrite`, and always one of the `sources` being read (the model
/// folder, the trained weights) or a folder that contains one of them.
pub fn check_target(target: &Path, sources: &[&Path], overwrite: bool, flag: &str) -> Result<()> {
    let resolved = absolute(target);
    for source in sources {
        let source_resolved = absolute(source);
        if source_resolved.starts_with(&resolved) {
            let what = if source_resolved == resolved { "is" } else { "contains" };
            return Err(Error::invalid_file(
                target,
                format!("{what} {}, which this command reads from; choose another folder", source.display()),
            ));
        }
    }
    if target.is_file() {
        return Err(Error::invalid_file(target, "is a file; choose a folder to write into"));
    }
    if !overwrite && is_non_empty_dir(target) {
        return Err(Error::invalid_file(target, format!("exists and is not empty; choose another folder, or pass {flag} to replace it")));
    }
    Ok(())
}

/// [`check_target`] for an output that is one file: refuses a folder, an existing file unless
/// `overwrite`, and any of the `sources` being read or a folder that holds them.
pub fn check_file_target(target: &Path, sources: &[&Path], overwrite: bool, flag: &str) -> Result<()> {
    let resolved = absolute(target);
    for source in sources {
        if absolute(source) == resolved {
            return Err(Error::invalid_file(
                target,
                format!("is {}, which this command reads from; choose another file", source.display()),
            ));
        }
    }
    if target.is_dir() {
        return Err(Error::invalid_file(target, "is a folder; give the file to write"));
    }
    if !overwrite && target.exists() {
        return Err(Error::invalid_file(target, format!("exists; choose another name, or pass {flag} to replace it")));
    }
    Ok(())
}

/// `path` made absolute and free of `.`, `..` and symbolic links as far as it exists.
fn absolute(path: &Path) -> PathBuf {
    let path = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    // Canonicalize the longest existing ancestor, then put the rest back.
    let mut existing = path.as_path();
    let mut rest = Vec::new();
    while !existing.exists() {
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_os_string());
                existing = parent;
            }
            _ => break,
        }
    }
    let mut out = existing.canonicalize().unwrap_or_else(|_| existing.to_path_buf());
    out.extend(rest.iter().rev());
    out
}

fn partial_path(path: &Path) -> PathBuf {
    sibling(path, ".partial")
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    path.with_file_name(name)
}

/// Whether `name` is what an interrupted [`write_atomic`] or [`Staging`] leaves behind.
pub fn is_leftover(name: &str) -> bool {
    name.ends_with(".partial") || name.ends_with(".old")
}

/// Creates `dir` and its parents.
pub fn create_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_names_below_their_folder_stay_inside() {
        for inside in ["model.safetensors", "sub/model-00001-of-00002.safetensors", "./data/train.parquet"] {
            assert!(stays_inside(inside), "{inside}");
        }
        for outside in ["", "../model.safetensors", "a/../../b", "/etc/passwd", "..\\..\\x.parquet", "C:\\x"] {
            assert!(!stays_inside(outside), "{outside}");
        }
    }

    #[test]
    fn a_target_that_holds_a_source_is_refused_even_with_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let model = dir.path().join("models/smol");
        std::fs::create_dir_all(&model).unwrap();
        for target in [model.clone(), dir.path().join("models"), model.join("..").join("smol")] {
            let err = check_target(&target, &[&model], true, "--overwrite").unwrap_err().to_string();
            assert!(err.contains("which this command reads from"), "{err}");
        }
        // A folder inside the model folder replaces nothing of it.
        assert!(check_target(&model.join("merged"), &[&model], false, "--overwrite").is_ok());
    }

    #[test]
    fn a_failed_staging_removes_itself() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out");
        {
            let staging = Staging::new(&target).unwrap();
            std::fs::write(staging.join("a"), "x").unwrap();
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
