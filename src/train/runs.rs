//! The runs under a folder, read back from what each wrote (`run.toml`, `metrics.jsonl`,
//! checkpoints), to compare their settings and curves and reopen their weights.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::config::TrainConfig;
use super::events::{EvalMetrics, StepMetrics};
use super::metrics::{METRICS_FILE, read_metrics};
use super::trainer::RUN_CONFIG_FILE;
use super::{FINAL_DIR, checkpoint};
use crate::error::{Error, Result};

/// One run directory, as it is on disk.
#[derive(Clone, Debug)]
pub struct RunRecord {
    pub dir: PathBuf,
    pub config: TrainConfig,
    pub steps: Vec<StepMetrics>,
    pub evals: Vec<EvalMetrics>,
    /// `final/` when the run finished, else its newest checkpoint; `None` before the first.
    pub weights: Option<PathBuf>,
    /// When its metrics last changed: the newest run first.
    pub modified: Option<SystemTime>,
}

impl RunRecord {
    /// Reads the run in `dir`; `None` when `dir` holds no run: no readable `run.toml`, or no
    /// `metrics.jsonl` (a checkpoint folder has the first without the second). A trainer's
    /// output brought back from a cluster (or the recipe folder holding it) reads as a run too.
    pub fn read(dir: &Path) -> Option<Self> {
        if !dir.join(METRICS_FILE).is_file() {
            return super::imported::read_trainer_output(dir);
        }
        let config = TrainConfig::from_toml_file(&dir.join(RUN_CONFIG_FILE)).ok()?;
        let (steps, evals) = read_metrics(dir).unwrap_or_default();
        let weights = run_weights(dir);
        let modified = std::fs::metadata(dir.join(METRICS_FILE)).and_then(|m| m.modified()).ok();
        Some(Self { dir: dir.to_path_buf(), config, steps, evals, weights, modified })
    }

    /// The folder's name, how the list names the run.
    pub fn name(&self) -> String {
        self.dir.file_name().map_or_else(|| self.dir.display().to_string(), |n| n.to_string_lossy().into_owned())
    }

    /// The method and its main settings, in a few words: `lora r16 α32, lr 2e-4` (a classifier's
    /// starts with `classifier, `).
    pub fn settings(&self) -> String {
        let method = match self.config.method.lora() {
            Some(lora) => format!("lora r{} α{}", lora.rank, lora.alpha),
            None => self.config.method.name().to_string(),
        };
        let base = if self.config.base_quant.bits().is_some() { format!(", {} base", self.config.base_quant) } else { String::new() };
        let task = if self.config.task == super::Task::Classification { "classifier, " } else { "" };
        format!("{task}{method}, lr {}{base}", three_digits(self.config.optim.lr))
    }

    pub fn last_step(&self) -> Option<&StepMetrics> {
        self.steps.last()
    }

    pub fn last_eval(&self) -> Option<&EvalMetrics> {
        self.evals.last()
    }
}

/// A number in scientific notation with at most three significant digits and no trailing zeros:
/// `1.44e-3` for a learning rate a preset computed as 1.4427585104404212e-3, `2e-4` for 2e-4.
fn three_digits(x: f64) -> String {
    let text = format!("{x:.2e}");
    let (mantissa, exponent) = text.split_once('e').unwrap_or((&text, "0"));
    let mantissa = if mantissa.contains('.') { mantissa.trim_end_matches('0').trim_end_matches('.') } else { mantissa };
    format!("{mantissa}e{exponent}")
}

/// A new run's folder name after its model, method and start (UTC, to the minute), e.g.
/// `SmolLM2-135M-Instruct-lora-20261207-1958`: runs started one after another keep apart, and
/// the Runs tab tells them apart at a glance.
pub fn run_name(model: &Path, method: &str, at: std::time::SystemTime) -> String {
    let model = model.to_string_lossy();
    // A folder or a file (without `.gguf`), a Hub id's name, an Ollama model's name and tag.
    let last = model.trim_end_matches(['/', '\\']).rsplit(['/', '\\']).next().unwrap_or_default();
    let last = last.strip_suffix(".gguf").unwrap_or(last).trim_start_matches("ollama:");
    let cleaned: String = last.chars().map(|c| if c.is_ascii_alphanumeric() || "._-".contains(c) { c } else { '-' }).collect();
    let cleaned = cleaned.trim_matches(['-', '.']);
    let seconds = at.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()) as i64;
    let (year, month, day) = crate::chat_template::civil_from_days(seconds.div_euclid(86_400));
    let minutes = seconds.rem_euclid(86_400) / 60;
    let stamp = format!("{year}{month:02}{day:02}-{:02}{:02}", minutes / 60, minutes % 60);
    let model = if cleaned.is_empty() { "model" } else { cleaned };
    format!("{model}-{method}-{stamp}")
}

/// `parent/name`, or `parent/name-2`, `-3`… where that is taken.
pub fn unused_run_dir(parent: &Path, name: &str) -> PathBuf {
    let first = parent.join(name);
    if !first.exists() {
        return first;
    }
    (2..).map(|i| parent.join(format!("{name}-{i}"))).find(|dir| !dir.exists()).unwrap_or(first)
}

/// Renames the run in `dir` to `new_name` beside it; returns its new folder. Refused with the
/// reason for a name that is not one plain folder name, a name taken, a folder that holds no run,
/// and a run that is training (its lock is held).
pub fn rename_run(dir: &Path, new_name: &str) -> Result<PathBuf> {
    let new_name = new_name.trim();
    if !crate::fsutil::stays_inside(new_name) || new_name.contains(['/', '\\']) || new_name == "." {
        return Err(Error::setting("run name", format!("`{new_name}` is not a folder name (no `/`, `\\` or `..`)")));
    }
    let target = dir.with_file_name(new_name);
    if target.exists() {
        return Err(Error::invalid_file(&target, "exists already; choose another name"));
    }
    check_finished_run(dir)?;
    std::fs::rename(dir, &target).map_err(|e| Error::io(dir, e))?;
    Ok(target)
}

/// Deletes the run in `dir`, checkpoints and all. Refused for a folder that holds no run and a
/// run that is training.
pub fn delete_run(dir: &Path) -> Result<()> {
    check_finished_run(dir)?;
    std::fs::remove_dir_all(dir).map_err(|e| Error::io(dir, e))
}

/// Refuses a folder that holds no run, or a run that is training: one whose lock is held. The
/// lock is let go at once (its file inside would keep Windows from moving or deleting the folder).
fn check_finished_run(dir: &Path) -> Result<()> {
    if !dir.join(RUN_CONFIG_FILE).is_file() {
        return Err(Error::invalid_file(dir, format!("holds no run (no {RUN_CONFIG_FILE})")));
    }
    super::RunLock::acquire(dir).map(drop)
}

/// A run's trained weights: `final/` when it finished, else its newest checkpoint; for a trainer's
/// output brought back from a cluster, what the trainer saved last.
pub fn run_weights(dir: &Path) -> Option<PathBuf> {
    let final_dir = dir.join(FINAL_DIR);
    if final_dir.is_dir() {
        return Some(final_dir);
    }
    checkpoint::latest(dir).or_else(|| super::imported::trainer_weights(dir))
}

/// Every run directly inside `parent` (and `parent` itself when it is one), the newest first.
pub fn list_runs(parent: &Path) -> Vec<RunRecord> {
    let mut runs: Vec<RunRecord> = std::fs::read_dir(parent)
        .map(|entries| entries.flatten().map(|e| e.path()).filter(|p| p.is_dir()).filter_map(|p| RunRecord::read(&p)).collect())
        .unwrap_or_default();
    runs.extend(RunRecord::read(parent));
    runs.sort_by(|a, b| b.modified.cmp(&a.modified).then_with(|| a.dir.cmp(&b.dir)));
    runs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_run(dir: &Path, lr: f64, losses: &[f64]) {
        std::fs::create_dir_all(dir.join("checkpoint-000002")).unwrap();
        let config = TrainConfig { optim: super::super::OptimizerConfig { lr, ..Default::default() }, ..Default::default() };
        config.save_toml(&dir.join(RUN_CONFIG_FILE)).unwrap();
        // A checkpoint folder holds its own run.toml: it is not a run of its own.
        config.save_toml(&dir.join("checkpoint-000002").join(RUN_CONFIG_FILE)).unwrap();
        std::fs::write(dir.join("checkpoint-000002").join(checkpoint::STATE_FILE), "{}").unwrap();
        let lines: Vec<String> = losses
            .iter()
            .enumerate()
            .map(|(i, loss)| format!(r#"{{"kind":"step","step":{},"total_steps":2,"epoch":1.0,"loss":{loss},"lr":{lr},"grad_norm":1.0,"tokens_per_second":1.0,"elapsed_seconds":1.0,"eta_seconds":0.0}}"#, i + 1))
            .chain([r#"{"kind":"eval","step":2,"loss":0.5,"perplexity":1.6,"accuracy":0.9}"#.to_string()])
            .collect();
        std::fs::write(dir.join(METRICS_FILE), lines.join("\n")).unwrap();
    }

    #[test]
    fn runs_are_named_after_model_method_and_start() {
        let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_796_673_171); // 2026-12-07 19:52:51 UTC
        assert_eq!(run_name(Path::new("/models/SmolLM2-135M-Instruct/"), "lora", at), "SmolLM2-135M-Instruct-lora-20261207-1952");
        assert_eq!(run_name(Path::new("C:\\m\\qwen2.5-0.5b.Q4_1.gguf"), "full", at), "qwen2.5-0.5b.Q4_1-full-20261207-1952");
        assert_eq!(run_name(Path::new("ollama:llama3.2:1b"), "lora", at), "llama3.2-1b-lora-20261207-1952");
        assert_eq!(run_name(Path::new("HuggingFaceTB/SmolLM2-135M"), "lora", at), "SmolLM2-135M-lora-20261207-1952");
        assert_eq!(run_name(Path::new(""), "lora", at), "model-lora-20261207-1952");
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(unused_run_dir(dir.path(), "a"), dir.path().join("a"));
        std::fs::create_dir(dir.path().join("a")).unwrap();
        std::fs::create_dir(dir.path().join("a-2")).unwrap();
        assert_eq!(unused_run_dir(dir.path(), "a"), dir.path().join("a-3"));
    }

    #[test]
    fn a_run_is_renamed_and_deleted_unless_it_trains() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("a");
        write_run(&run, 1e-3, &[2.0, 1.0]);
        std::fs::create_dir(dir.path().join("taken")).unwrap();
        for (name, reason) in [("../x", "is not a folder name"), ("x/y", "is not a folder name"), ("taken", "exists already")] {
            let err = rename_run(&run, name).unwrap_err().to_string();
            assert!(err.contains(reason), "{name}: {err}");
        }
        let held = crate::train::RunLock::acquire(&run).unwrap();
        assert!(rename_run(&run, "b").unwrap_err().to_string().contains("another wgtune is training"));
        assert!(delete_run(&run).unwrap_err().to_string().contains("another wgtune is training"));
        drop(held);
        let renamed = rename_run(&run, " b ").unwrap();
        assert_eq!(renamed, dir.path().join("b"));
        assert!(RunRecord::read(&renamed).is_some() && !run.exists());
        assert!(delete_run(&dir.path().join("taken")).unwrap_err().to_string().contains("holds no run"));
        delete_run(&renamed).unwrap();
        assert!(!renamed.exists() && dir.path().join("taken").exists());
    }

    #[test]
    fn learning_rates_show_three_significant_digits_at_most() {
        assert_eq!(three_digits(1.4427585104404212e-3), "1.44e-3");
        assert_eq!(three_digits(2e-4), "2e-4");
        assert_eq!(three_digits(1.5e-5), "1.5e-5");
        assert_eq!(three_digits(0.1), "1e-1");
        assert_eq!(three_digits(9.999e-4), "1e-3");
    }

    #[test]
    fn runs_are_listed_with_their_settings_curves_and_weights() {
        let parent = tempfile::tempdir().unwrap();
        write_run(&parent.path().join("first"), 1e-3, &[2.0, 1.0]);
        std::thread::sleep(std::time::Duration::from_millis(20));
        write_run(&parent.path().join("second"), 2e-4, &[3.0, 2.5]);
        std::fs::create_dir_all(parent.path().join("second/final")).unwrap();
        std::fs::create_dir_all(parent.path().join("not-a-run")).unwrap();

        let runs = list_runs(parent.path());
        let names: Vec<String> = runs.iter().map(RunRecord::name).collect();
        assert_eq!(names, ["second", "first"], "the newest first, and only runs");
        assert_eq!(runs[0].weights, Some(parent.path().join("second/final")));
        assert_eq!(runs[1].weights, Some(parent.path().join("first/checkpoint-000002")));
        assert_eq!(runs[1].steps.iter().map(|s| s.loss).collect::<Vec<_>>(), [2.0, 1.0]);
        assert_eq!(runs[1].last_eval().map(|e| e.loss), Some(0.5));
        assert_eq!(runs[1].settings(), "lora r16 α32, lr 1e-3");
        assert_eq!(runs[0].settings(), "lora r16 α32, lr 2e-4");
        // A run folder itself lists as its one run, without its checkpoints.
        assert_eq!(list_runs(&parent.path().join("first")).len(), 1);
    }
}
