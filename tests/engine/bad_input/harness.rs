//! Running `wgtune` on hostile input in a sandbox folder, and checking what a user would: the
//! exit status, that nothing panicked, that the message names what is wrong, and that every file
//! that existed before is unchanged.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::fixture;

/// A scratch folder holding the inputs of one case.
pub struct Sandbox {
    dir: tempfile::TempDir,
}

impl Sandbox {
    pub fn new() -> Self {
        Self { dir: tempfile::tempdir().unwrap() }
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    pub fn write(&self, relative: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
        let path = self.path(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, bytes).unwrap();
        path
    }

    /// A copy of a fixture model folder at `relative` (files only, not its adapter).
    pub fn model_from(&self, fixture_name: &str, relative: &str) -> PathBuf {
        let to = self.path(relative);
        std::fs::create_dir_all(&to).unwrap();
        for entry in std::fs::read_dir(fixture(fixture_name)).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name();
            let keep = entry.path().is_file() && !name.to_string_lossy().starts_with("golden");
            if keep {
                std::fs::copy(entry.path(), to.join(name)).unwrap();
            }
        }
        to
    }

    /// A copy of the tiny Llama at `model/`.
    pub fn model(&self) -> PathBuf {
        self.model_from("tiny-llama", "model")
    }

    /// Edits the copied model's `config.json` as JSON.
    pub fn edit_config(&self, model: &Path, edit: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>)) {
        let path = model.join("config.json");
        let mut config: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        edit(config.as_object_mut().unwrap());
        std::fs::write(path, serde_json::to_string_pretty(&config).unwrap()).unwrap();
    }

    /// Every file under the sandbox with its contents.
    pub fn snapshot(&self) -> BTreeMap<PathBuf, Vec<u8>> {
        let mut files = BTreeMap::new();
        let mut stack = vec![self.root().to_path_buf()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else {
                    files.insert(path.clone(), std::fs::read(&path).unwrap_or_default());
                }
            }
        }
        files
    }
}

pub use crate::common::{text, wgtune};

/// A path as the argument and the message show it.
pub fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Runs `wgtune args` in `sandbox` and asserts that it was refused: exit status 1 (a panic
/// exits with 101), no panic message, an error that contains every one of `expected`, and every
/// file in the sandbox exactly as before (none added either). Returns the error text.
pub fn refused(case: &str, sandbox: &Sandbox, args: &[&str], expected: &[&str]) -> String {
    refused_with_env(case, sandbox, args, &[], expected)
}

/// [`refused`], with environment variables set for the run.
pub fn refused_with_env(case: &str, sandbox: &Sandbox, args: &[&str], env: &[(&str, &Path)], expected: &[&str]) -> String {
    let before = sandbox.snapshot();
    let out = Command::new(env!("CARGO_BIN_EXE_wgtune")).args(args).envs(env.iter().copied()).output().expect("run wgtune");
    let stderr = text(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{case}: expected a refusal, got {:?}\nstderr: {stderr}\nstdout: {}",
        out.status,
        text(&out.stdout)
    );
    assert!(!stderr.contains("panicked"), "{case}: panicked\n{stderr}");
    assert!(stderr.starts_with("error: "), "{case}: {stderr}");
    for piece in expected {
        assert!(stderr.contains(piece), "{case}: `{piece}` is not in the message:\n{stderr}");
    }
    let after = sandbox.snapshot();
    assert_eq!(before.keys().collect::<Vec<_>>(), after.keys().collect::<Vec<_>>(), "{case}: files were added or removed");
    for (path, bytes) in &before {
        assert!(after[path] == *bytes, "{case}: {} changed", path.display());
    }
    stderr
}

/// Runs `wgtune args` and asserts success without a panic; returns stdout.
pub fn succeeds(case: &str, args: &[&str]) -> String {
    let out = wgtune(args);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{case}: failed with {:?}\n{stderr}", out.status);
    assert!(!stderr.contains("panicked"), "{case}: panicked\n{stderr}");
    text(&out.stdout)
}

/// `generate` on the CPU, a short prompt.
pub fn generate_args(model: &Path) -> Vec<&str> {
    vec!["generate", "--model", s(model), "--prompt", "Hi", "--max-new-tokens", "2", "--device", "cpu"]
}

/// The arguments of a LoRA run on the CPU (one epoch) that stops at the first bad record; the
/// last two arguments are `--bad-records stop`.
pub fn train_args<'a>(model: &'a Path, data: &'a Path, run: &'a Path) -> Vec<&'a str> {
    vec!["train", "--model", s(model), "--data", s(data), "--output", s(run), "--device", "cpu", "--plain", "--bad-records", "stop"]
}
