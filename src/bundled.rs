//! The demo model and datasets, carried inside the binary, so that an installed wgtune (a
//! package, a wheel, a copied executable) runs its demo anywhere, with no checkout beside it.
//!
//! The engine reads models from files (it maps their weights), so the bundle is written once
//! into the user's data folder under a name that changes with its contents: an upgrade never
//! reads an older copy, and a copy that was damaged is written again.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

macro_rules! bundle {
    ($($path:literal),* $(,)?) => {
        &[$(($path, include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/assets/", $path)) as &[u8])),*]
    };
}

/// Each bundled file: its path inside the bundle (and under `assets/` in the checkout), and its
/// bytes.
const FILES: &[(&str, &[u8])] = bundle!(
    "demo-model/README.md",
    "demo-model/chat_template.jinja",
    "demo-model/config.json",
    "demo-model/generation_config.json",
    "demo-model/model.safetensors",
    "demo-model/tokenizer.json",
    "demo-model/tokenizer_config.json",
    "demo/train.jsonl",
    "demo/validation.jsonl",
    "reviews/train.jsonl",
    "reviews/validation.jsonl",
);

/// The bundle written out: the demo model and the two demo datasets.
#[derive(Clone, Debug)]
pub struct Bundled {
    root: PathBuf,
}

impl Bundled {
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A small chat model (a Llama) that the demo fine-tunes.
    pub fn demo_model(&self) -> PathBuf {
        self.root.join("demo-model")
    }

    /// The questions about invented countries: `demo/train.jsonl` and `demo/validation.jsonl`.
    pub fn questions(&self) -> DemoData {
        DemoData::at(self.root.join("demo"))
    }

    /// Product reviews labelled by topic, for the classification demo.
    pub fn reviews(&self) -> DemoData {
        DemoData::at(self.root.join("reviews"))
    }
}

/// A bundled dataset's training and validation files.
#[derive(Clone, Debug)]
pub struct DemoData {
    pub train: PathBuf,
    pub validation: PathBuf,
}

impl DemoData {
    fn at(dir: PathBuf) -> Self {
        Self { train: dir.join("train.jsonl"), validation: dir.join("validation.jsonl") }
    }
}

/// The bundle in the user's data folder (`$XDG_DATA_HOME/wgtune` or `~/.local/share/wgtune` on
/// Linux, `~/Library/Application Support/wgtune` on macOS, `%LOCALAPPDATA%\wgtune` on Windows),
/// written there on first use; in the temporary folder where there is no data folder or it
/// cannot be written.
pub fn bundled() -> Result<Bundled> {
    let name = bundle_name();
    let home = dirs::data_local_dir().map(|dir| dir.join("wgtune").join(&name));
    match home.map(|dir| bundled_at(&dir)) {
        Some(Ok(bundle)) => Ok(bundle),
        fallback => {
            let temporary = std::env::temp_dir().join(format!("wgtune-{name}"));
            bundled_at(&temporary).or_else(|e| fallback.unwrap_or(Err(e)))
        }
    }
}

/// The bundle in `dir`: reused where every file there equals the bundled one, written (again)
/// otherwise. Several processes may start at once: each fills its own staging folder, and the
/// first rename wins.
pub fn bundled_at(dir: &Path) -> Result<Bundled> {
    if holds_bundle(dir) {
        return Ok(Bundled { root: dir.to_path_buf() });
    }
    let parent = dir.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    let staging = PathBuf::from(format!("{}.partial-{}", dir.display(), std::process::id()));
    let written = write_bundle(&staging).and_then(|()| {
        if dir.exists() && !holds_bundle(dir) {
            // A damaged copy: replaced whole.
            std::fs::remove_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        match std::fs::rename(&staging, dir) {
            Ok(()) => Ok(()),
            // Another process published first.
            Err(_) if holds_bundle(dir) => Ok(()),
            Err(e) => Err(Error::io(dir, e)),
        }
    });
    let _ = std::fs::remove_dir_all(&staging);
    written.map(|()| Bundled { root: dir.to_path_buf() })
}

/// `bundled-` and the first 12 hex digits of a hash over every bundled path and byte.
fn bundle_name() -> String {
    let mut hash = Sha256::new();
    for (path, bytes) in FILES {
        hash.update((path.len() as u64).to_le_bytes());
        hash.update(path.as_bytes());
        hash.update((bytes.len() as u64).to_le_bytes());
        hash.update(bytes);
    }
    let digest = hash.finalize();
    format!("bundled-{}", digest[..6].iter().map(|b| format!("{b:02x}")).collect::<String>())
}

fn holds_bundle(dir: &Path) -> bool {
    FILES.iter().all(|(path, bytes)| std::fs::read(dir.join(path)).is_ok_and(|found| found == *bytes))
}

fn write_bundle(staging: &Path) -> Result<()> {
    if staging.exists() {
        std::fs::remove_dir_all(staging).map_err(|e| Error::io(staging, e))?;
    }
    for (path, bytes) in FILES {
        let file = staging.join(path);
        if let Some(folder) = file.parent() {
            std::fs::create_dir_all(folder).map_err(|e| Error::io(folder, e))?;
        }
        std::fs::write(&file, bytes).map_err(|e| Error::io(&file, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checkout_assets() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("assets")
    }

    #[test]
    fn the_bundle_is_written_once_with_the_checkouts_files_and_repaired_when_damaged() {
        let home = tempfile::tempdir().unwrap();
        let dir = home.path().join("wgtune").join(bundle_name());
        let bundle = bundled_at(&dir).unwrap();
        for (path, _) in FILES {
            assert_eq!(std::fs::read(dir.join(path)).unwrap(), std::fs::read(checkout_assets().join(path)).unwrap(), "{path}");
        }
        assert!(bundle.demo_model().join("model.safetensors").is_file());
        assert!(bundle.questions().train.is_file() && bundle.reviews().validation.is_file());

        // Reused as it is: an extra file (a user's) survives.
        std::fs::write(dir.join("note.txt"), "mine").unwrap();
        bundled_at(&dir).unwrap();
        assert!(dir.join("note.txt").exists());

        // A damaged file: the copy is written again, whole, and no staging folder is left.
        std::fs::write(dir.join("demo-model/config.json"), "{").unwrap();
        bundled_at(&dir).unwrap();
        let config = std::fs::read(dir.join("demo-model/config.json")).unwrap();
        assert_eq!(config, std::fs::read(checkout_assets().join("demo-model/config.json")).unwrap());
        let names: Vec<_> = std::fs::read_dir(dir.parent().unwrap()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, [std::ffi::OsString::from(bundle_name())]);
    }

    #[test]
    fn every_demo_file_in_the_checkout_is_bundled() {
        for folder in ["demo-model", "demo", "reviews"] {
            for entry in std::fs::read_dir(checkout_assets().join(folder)).unwrap() {
                let name = format!("{folder}/{}", entry.unwrap().file_name().to_string_lossy());
                if name.ends_with(".py") {
                    continue; // the scripts that wrote the data
                }
                assert!(FILES.iter().any(|(path, _)| *path == name), "{name} is not bundled");
            }
        }
    }
}
