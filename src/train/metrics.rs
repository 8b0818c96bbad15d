//! `metrics.jsonl` in the run directory: one JSON object per step or evaluation.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::events::{EvalMetrics, StepMetrics};
use crate::error::{Error, Result};

pub const METRICS_FILE: &str = "metrics.jsonl";

pub struct MetricsLog {
    path: PathBuf,
    file: File,
}

#[derive(Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
enum Line<'a> {
    Step(&'a StepMetrics),
    Eval(&'a EvalMetrics),
}

impl MetricsLog {
    /// Opens the log for appending, first dropping lines past `resume_step` (left by a run that
    /// crashed after its last checkpoint), so a resumed run's curve has no duplicates.
    pub fn open(run_dir: &Path, resume_step: usize) -> Result<Self> {
        let path = run_dir.join(METRICS_FILE);
        if path.exists() {
            let kept: Vec<String> = BufReader::new(File::open(&path).map_err(|e| Error::io(&path, e))?)
                .lines()
                .map_while(|l| l.ok())
                .filter(|line| step_of(line).is_some_and(|s| s <= resume_step))
                .collect();
            let mut text = kept.join("\n");
            if !text.is_empty() {
                text.push('\n');
            }
            crate::fsutil::write_atomic(&path, text.as_bytes())?;
        }
        let file = OpenOptions::new().create(true).append(true).open(&path).map_err(|e| Error::io(&path, e))?;
        Ok(Self { path, file })
    }

    pub fn step(&mut self, metrics: &StepMetrics) -> Result<()> {
        self.write(&Line::Step(metrics))
    }

    pub fn eval(&mut self, metrics: &EvalMetrics) -> Result<()> {
        self.write(&Line::Eval(metrics))
    }

    fn write(&mut self, line: &Line) -> Result<()> {
        let mut text = serde_json::to_string(line).unwrap_or_default();
        text.push('\n');
        self.file.write_all(text.as_bytes()).map_err(|e| Error::io(&self.path, e))
    }
}

fn step_of(line: &str) -> Option<usize> {
    serde_json::from_str::<serde_json::Value>(line).ok()?.get("step")?.as_u64().map(|s| s as usize)
}

/// Reads a run's metrics back: its steps and evaluations, in order.
pub fn read_metrics(run_dir: &Path) -> Result<(Vec<StepMetrics>, Vec<EvalMetrics>)> {
    let path = run_dir.join(METRICS_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    let (mut steps, mut evals) = (Vec::new(), Vec::new());
    for line in text.lines() {
        let Ok(value) = serde_json::from_str::<serde_json::Value>(line) else { continue };
        match value.get("kind").and_then(|k| k.as_str()) {
            Some("step") => steps.extend(serde_json::from_value(value).ok()),
            Some("eval") => evals.extend(serde_json::from_value(value).ok()),
            _ => {}
        }
    }
    Ok((steps, evals))
}
