//! Shows training events in the terminal: a progress bar with loss, tokens/s and ETA.

use std::sync::mpsc::Receiver;
use std::thread::JoinHandle;

use indicatif::{ProgressBar, ProgressStyle};
use wgtune::inspect::human_count;
use wgtune::train::TrainEvent;

pub struct TrainProgress {
    thread: JoinHandle<()>,
}

impl TrainProgress {
    /// With `plain` (or when stderr is not a terminal) each step is a printed line.
    pub fn spawn(events: Receiver<TrainEvent>, plain: bool) -> Self {
        use std::io::IsTerminal;
        let plain = plain || !std::io::stderr().is_terminal();
        let thread = std::thread::spawn(move || show(events, plain));
        Self { thread }
    }

    /// Waits until every event has been shown (the sender is gone once training returns).
    pub fn finish(self) {
        let _ = self.thread.join();
    }
}

fn show(events: Receiver<TrainEvent>, plain: bool) {
    let bar = if plain { ProgressBar::hidden() } else { ProgressBar::new(0) };
    bar.set_style(
        ProgressStyle::with_template("{bar:30.cyan/blue} {pos}/{len} steps  {msg}").unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let say = |line: String| {
        if plain {
            println!("{line}");
        } else {
            bar.println(line);
        }
    };
    for event in events {
        match event {
            TrainEvent::Preparing(what) => say(format!("{what}…")),
            TrainEvent::Started(info) => {
                say(format!(
                    "Training on {}: {} method, {} of {} parameters trainable ({:.2}%), {} training / {} validation examples{}{}",
                    info.device,
                    info.method,
                    human_count(info.trainable_parameters),
                    human_count(info.total_parameters),
                    100.0 * info.trainable_parameters as f64 / info.total_parameters.max(1) as f64,
                    info.train_examples,
                    info.validation_examples,
                    if info.skipped_records > 0 { format!(", {} records skipped", info.skipped_records) } else { String::new() },
                    if info.truncated_records > 0 { format!(", {} truncated", info.truncated_records) } else { String::new() },
                ));
                for skipped in &info.first_skipped {
                    say(format!("  skipped {skipped}"));
                }
                if info.skipped_records > 0 {
                    say(format!(
                        "  every skipped record, with its file, line and reason: {}",
                        info.run_dir.join(wgtune::train::SKIPPED_FILE).display()
                    ));
                }
                bar.set_length(info.total_steps as u64);
                bar.set_position(info.start_step as u64);
            }
            TrainEvent::Step(m) => {
                bar.set_position(m.step as u64);
                let grad = if m.skipped { "overflow, update skipped".to_string() } else { format!("{:.3}", m.grad_norm) };
                let msg = format!(
                    "loss {:.4}  lr {:.2e}  |g| {grad}  {:.0} tok/s  ETA {}",
                    m.loss,
                    m.lr,
                    m.tokens_per_second,
                    clock(m.eta_seconds)
                );
                if plain {
                    println!("step {}/{}  epoch {:.2}  {msg}", m.step, m.total_steps, m.epoch);
                } else {
                    bar.set_message(msg);
                }
            }
            TrainEvent::Eval(e) if e.classification.is_some() => {
                let c = e.classification.as_ref().map(|c| c.macro_f1).unwrap_or_default();
                say(format!(
                    "eval at step {}: loss {:.4}  accuracy {:.1}%  macro F1 {:.1}%",
                    e.step,
                    e.loss,
                    100.0 * e.accuracy,
                    100.0 * c
                ));
            }
            TrainEvent::Eval(e) => {
                let answers = match &e.generation {
                    Some(g) => format!(
                        "  answers: exact match {:.0}%  token F1 {:.0}%  (e.g. “{}”)",
                        100.0 * g.summary.exact_match,
                        100.0 * g.summary.token_f1,
                        g.answers.first().map(|a| a.answer.as_str()).unwrap_or_default()
                    ),
                    None => String::new(),
                };
                say(format!(
                    "eval at step {}: loss {:.4}  perplexity {:.2}  accuracy {:.1}%{answers}",
                    e.step,
                    e.loss,
                    e.perplexity,
                    100.0 * e.accuracy
                ))
            }
            TrainEvent::CheckpointSaved { path, .. } => say(format!("checkpoint {}", path.display())),
            TrainEvent::Paused { step } => say(format!("paused at step {step}")),
            TrainEvent::Resumed { step } => say(format!("resumed at step {step}")),
            TrainEvent::Generated { prompt, reply } => match reply {
                Ok(reply) => say(format!("{prompt} → {}", reply.text)),
                Err(error) => say(format!("{prompt} → [generation failed: {error}]")),
            },
            TrainEvent::Finished(_) => bar.finish_and_clear(),
            TrainEvent::Failed { last_checkpoint, .. } => {
                bar.abandon();
                if let Some(dir) = last_checkpoint {
                    say(format!("the last good checkpoint is {}", dir.display()));
                }
            }
        }
    }
}

fn clock(seconds: f64) -> String {
    let s = seconds.max(0.0) as u64;
    if s >= 3600 { format!("{}h{:02}m", s / 3600, (s % 3600) / 60) } else { format!("{}m{:02}s", s / 60, s % 60) }
}

/// A model as `--model` names it, with a progress bar while a Hugging Face id downloads.
pub fn resolve_model(spec: &std::path::Path) -> anyhow::Result<std::path::PathBuf> {
    Ok(with_download_bar(|progress| wgtune::hub::resolve_model_with(spec, progress))?)
}

/// A data file as `--data` names it: a Hugging Face dataset id's `split` (under `subset`) is
/// downloaded with a progress bar.
pub fn resolve_dataset(spec: &std::path::Path, subset: Option<&str>, split: &str) -> anyhow::Result<std::path::PathBuf> {
    Ok(with_download_bar(|progress| wgtune::hub::resolve_dataset_with(spec, subset, split, progress))?)
}

/// Runs `job` with a progress bar on stderr that appears with the first download.
fn with_download_bar<T>(job: impl FnOnce(&mut dyn FnMut(&wgtune::download::DownloadProgress)) -> T) -> T {
    let bar = ProgressBar::hidden();
    let mut shown = false;
    let result = job(&mut |p| {
        if !shown {
            bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template("{msg} {bar:30.cyan/blue} {bytes}/{total_bytes} {bytes_per_sec}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            shown = true;
        }
        bar.set_message(format!("{} ({}/{})", p.file, p.index, p.files));
        bar.set_length(p.total);
        bar.set_position(p.bytes);
    });
    bar.finish_and_clear();
    result
}
