//! Runs trained elsewhere and brought back: the output folder of TRL, Axolotl or any Hugging Face
//! `Trainer` (`checkpoint-N/` folders with `trainer_state.json`, a PEFT adapter or a model at the
//! end), read as a [`RunRecord`] with its loss curve from the trainer's `log_history`, so the Runs
//! tab shows it beside the laptop runs.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::config::TrainConfig;
use super::events::{EvalMetrics, StepMetrics};
use super::runs::RunRecord;
use super::trainer::RUN_CONFIG_FILE;

/// The file a Hugging Face `Trainer` keeps its log in, in every checkpoint.
pub const TRAINER_STATE: &str = "trainer_state.json";
/// The most bytes of a `trainer_state.json` read: a log of a million steps is far less.
const STATE_LIMIT: u64 = 256 << 20;

/// The trainer output in `dir`, or in `dir/output` (a recipe's folder, as wgtune wrote it);
/// `None` where neither holds a checkpoint with a `trainer_state.json`.
pub fn read_trainer_output(dir: &Path) -> Option<RunRecord> {
    let (output, recipe) = output_folder(dir)?;
    let checkpoint = newest_checkpoint(&output)?;
    let state_path = checkpoint.join(TRAINER_STATE);
    let state: Value = serde_json::from_str(&crate::fsutil::read_text_bounded(&state_path, STATE_LIMIT).ok()?).ok()?;
    let (steps, evals) = curves(&state);
    // The settings the recipe was written from, beside the output; the defaults otherwise.
    let config = [Some(output.as_path()), recipe]
        .into_iter()
        .flatten()
        .find_map(|d| TrainConfig::from_toml_file(&d.join(RUN_CONFIG_FILE)).ok())
        .unwrap_or_default();
    let weights = trainer_weights(dir);
    let modified = std::fs::metadata(&state_path).and_then(|m| m.modified()).ok();
    Some(RunRecord { dir: dir.to_path_buf(), config, steps, evals, weights, modified })
}

/// The trainer's output folder in `dir` (itself, or `dir/output`), and the folder the recipe's
/// `run.toml` may be in.
fn output_folder(dir: &Path) -> Option<(PathBuf, Option<&Path>)> {
    if newest_checkpoint(dir).is_some() {
        Some((dir.to_path_buf(), dir.parent()))
    } else {
        newest_checkpoint(&dir.join("output")).map(|_| (dir.join("output"), Some(dir)))
    }
}

/// The trained weights of a trainer's output in `dir`: the adapter (or model) it saved at the
/// end, else its newest checkpoint.
pub fn trainer_weights(dir: &Path) -> Option<PathBuf> {
    let (output, _) = output_folder(dir)?;
    let at_end = output.join("adapter_model.safetensors").is_file() || output.join("model.safetensors").is_file();
    if at_end { Some(output) } else { newest_checkpoint(&output) }
}

/// The `checkpoint-N` folder with the highest N that holds a trainer state.
fn newest_checkpoint(dir: &Path) -> Option<PathBuf> {
    std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .filter_map(|e| {
            let n: usize = e.file_name().to_str()?.strip_prefix("checkpoint-")?.parse().ok()?;
            e.path().join(TRAINER_STATE).is_file().then(|| (n, e.path()))
        })
        .max_by_key(|(n, _)| *n)
        .map(|(_, path)| path)
}

/// The training and evaluation entries of a trainer's `log_history`, as wgtune's metrics.
fn curves(state: &Value) -> (Vec<StepMetrics>, Vec<EvalMetrics>) {
    let total_steps = state.get("max_steps").and_then(Value::as_u64).unwrap_or(0) as usize;
    let number = |entry: &Value, key: &str| entry.get(key).and_then(Value::as_f64);
    let (mut steps, mut evals) = (Vec::new(), Vec::new());
    for entry in state.get("log_history").and_then(Value::as_array).into_iter().flatten() {
        let step = entry.get("step").and_then(Value::as_u64).unwrap_or(0) as usize;
        if let Some(loss) = number(entry, "loss") {
            steps.push(StepMetrics {
                step,
                total_steps: total_steps.max(step),
                epoch: number(entry, "epoch").unwrap_or(0.0),
                loss,
                lr: number(entry, "learning_rate").unwrap_or(0.0),
                grad_norm: number(entry, "grad_norm").unwrap_or(0.0),
                skipped: false,
                tokens_per_second: 0.0,
                elapsed_seconds: 0.0,
                eta_seconds: 0.0,
            });
        } else if let Some(loss) = number(entry, "eval_loss") {
            evals.push(EvalMetrics {
                step,
                loss,
                perplexity: loss.exp(),
                accuracy: number(entry, "eval_mean_token_accuracy").unwrap_or(0.0),
                generation: None,
                classification: None,
            });
        }
    }
    (steps, evals)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trainer_output_reads_as_a_run_with_its_curves() {
        let dir = tempfile::tempdir().unwrap();
        let recipe = dir.path().join("cluster");
        let output = recipe.join("output");
        for (n, log) in [
            (5, r#"[{"loss": 2.5, "learning_rate": 1e-3, "grad_norm": 3.0, "epoch": 0.2, "step": 1}]"#),
            (
                10,
                r#"[{"loss": 2.5, "learning_rate": 1e-3, "grad_norm": 3.0, "epoch": 0.2, "step": 1},
                    {"loss": 1.25, "learning_rate": 5e-4, "grad_norm": 1.5, "epoch": 0.4, "step": 2},
                    {"eval_loss": 0.5, "eval_mean_token_accuracy": 0.75, "epoch": 0.4, "step": 2},
                    {"train_runtime": 12.0, "train_loss": 1.9, "step": 2}]"#,
            ),
        ] {
            let checkpoint = output.join(format!("checkpoint-{n}"));
            std::fs::create_dir_all(&checkpoint).unwrap();
            std::fs::write(checkpoint.join(TRAINER_STATE), format!(r#"{{"max_steps": 2, "log_history": {log}}}"#)).unwrap();
        }
        std::fs::write(output.join("adapter_model.safetensors"), b"").unwrap();
        TrainConfig { seed: 9, ..TrainConfig::default() }.save_toml(&recipe.join(RUN_CONFIG_FILE)).unwrap();

        // The recipe's folder and its output folder both read as the run.
        for dir in [&recipe, &output] {
            let run = read_trainer_output(dir).unwrap();
            assert_eq!(
                run.steps.iter().map(|s| (s.step, s.loss, s.lr, s.grad_norm)).collect::<Vec<_>>(),
                [(1, 2.5, 1e-3, 3.0), (2, 1.25, 5e-4, 1.5)]
            );
            assert_eq!(run.steps[1].total_steps, 2);
            assert_eq!((run.evals[0].step, run.evals[0].loss, run.evals[0].accuracy), (2, 0.5, 0.75));
            assert_eq!(run.weights.as_deref(), Some(output.as_path()));
            assert_eq!(run.config.seed, 9);
        }
        assert!(read_trainer_output(dir.path()).is_none());
        // Before the trainer saves at the end, its newest checkpoint is the run's weights.
        std::fs::remove_file(output.join("adapter_model.safetensors")).unwrap();
        assert_eq!(trainer_weights(&recipe), Some(output.join("checkpoint-10")));
        assert_eq!(trainer_weights(dir.path()), None);
    }
}
