//! The run directory: whether a run may start in it, what an earlier run left there, and the
//! list of records the run skipped.

use std::path::Path;

use super::config::TrainConfig;
use super::metrics::METRICS_FILE;
use super::trainer::{FINAL_DIR, RUN_CONFIG_FILE};
use crate::error::{Error, Result};
use crate::fsutil;

/// Every record the run left out, one JSON object per line: file, line, reason.
pub const SKIPPED_FILE: &str = "skipped.jsonl";

/// How a run starts in its output directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunStart {
    /// A new run; the output directory must not exist or be empty.
    New,
    /// A new run replacing the one in the output directory (wgtune's own files there are
    /// removed once the model and data have loaded; anything else is left alone).
    Overwrite,
    /// Continue from the newest checkpoint in the output directory.
    Resume,
}

/// Whether `dir` already holds files that a new run would mix with or replace.
pub fn output_dir_in_use(dir: &Path) -> bool {
    fsutil::is_non_empty_dir(dir)
}

/// Checks, before anything is loaded, that the run directory can be used as `start` says.
pub(super) fn check(config: &TrainConfig, start: RunStart) -> Result<()> {
    let dir = &config.output_dir;
    match start {
        // A run killed before its first checkpoint resumes from step 0: its settings are all in
        // run.toml (which `--resume` read), and a seeded run starts the same way again.
        RunStart::Resume => Ok(()),
        RunStart::New if output_dir_in_use(dir) => Err(Error::invalid_file(
            dir,
            "already holds files (an earlier run?); resume it with --resume, choose another --output, or pass --overwrite to replace it",
        )),
        _ if dir.is_file() => Err(Error::invalid_file(dir, "is a file; choose a folder for the run")),
        // --overwrite removes only what a run wrote (see `clear`), so the folder may hold more.
        RunStart::New | RunStart::Overwrite => Ok(()),
    }
}

/// Removes what an earlier run wrote into `dir`, and nothing else.
pub(super) fn clear(dir: &Path) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Ok(()) };
    for entry in entries.flatten() {
        let path = entry.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else { continue };
        // Not the lock file: this run holds it.
        let ours = [RUN_CONFIG_FILE, METRICS_FILE, SKIPPED_FILE, FINAL_DIR].contains(&name)
            || name.starts_with("checkpoint-")
            || fsutil::is_leftover(name);
        if !ours {
            continue;
        }
        let removed = if path.is_dir() { std::fs::remove_dir_all(&path) } else { std::fs::remove_file(&path) };
        removed.map_err(|e| Error::io(&path, e))?;
    }
    Ok(())
}

/// Writes `RUN_DIR/skipped.jsonl`: every record left out, with its file, line and reason.
pub(super) fn write_skipped(run_dir: &Path, skipped: &[crate::data::Skipped]) -> Result<()> {
    let path = run_dir.join(SKIPPED_FILE);
    let mut text = String::new();
    for s in skipped {
        let line = serde_json::json!({ "file": s.origin.file.display().to_string(), "line": s.origin.line, "reason": s.reason });
        text.push_str(&line.to_string());
        text.push('\n');
    }
    fsutil::write_atomic(&path, text.as_bytes())
}
