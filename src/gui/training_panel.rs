//! The training panel: start, pause, resume and stop a run; progress; live plots of the loss
//! (raw and smoothed), validation loss, learning rate and gradient norm; a clear failure panel.

use std::path::PathBuf;

use crate::train::{
    EvalMetrics, RunInfo, RunStart, RunSummary, SKIPPED_FILE, StepMetrics, TrainCommand, TrainEvent, TrainingHandle, read_metrics,
};
use eframe::egui;
use egui_plot::{Legend, Line, Plot, Points};

use super::app::WgtuneApp;
use super::model_panel::{display_path, error_ui};
use super::picker::PickKind;

#[derive(Default)]
pub struct TrainingPanel {
    handle: Option<TrainingHandle>,
    pub info: Option<RunInfo>,
    pub steps: Vec<StepMetrics>,
    pub evals: Vec<EvalMetrics>,
    pub preparing: Option<String>,
    pub paused: bool,
    pub summary: Option<RunSummary>,
    pub failure: Option<(String, Option<PathBuf>)>,
    pub last_checkpoint: Option<PathBuf>,
    pub start_error: Option<String>,
    pub settings_message: Option<String>,
    /// Start was pressed with an output folder that already holds a run: ask what to do.
    pub confirm_overwrite: bool,
}

impl TrainingPanel {
    pub fn start(&mut self, handle: TrainingHandle) {
        *self = Self { handle: Some(handle), settings_message: self.settings_message.take(), ..Default::default() };
        self.preparing = Some("Starting…".into());
    }

    pub fn is_running(&self) -> bool {
        self.handle.is_some() && self.summary.is_none() && self.failure.is_none()
    }

    pub fn send(&self, command: TrainCommand) {
        if let Some(handle) = &self.handle {
            handle.send(command);
        }
    }

    pub fn poll(&mut self) -> Vec<TrainEvent> {
        let Some(handle) = &self.handle else { return Vec::new() };
        let events: Vec<TrainEvent> = handle.events.try_iter().collect();
        if events.is_empty() && handle.is_finished() && self.is_running() {
            self.failure = Some(("the training thread ended without a result".into(), None));
        }
        events
    }

    pub fn run_dir(&self) -> Option<PathBuf> {
        self.info.as_ref().map(|i| i.run_dir.clone())
    }

    pub fn apply(&mut self, event: TrainEvent) {
        match event {
            TrainEvent::Preparing(what) => self.preparing = Some(what),
            TrainEvent::Started(info) => {
                self.preparing = None;
                if info.start_step > 0 {
                    // A resumed run: show the curve so far.
                    if let Ok((steps, evals)) = read_metrics(&info.run_dir) {
                        self.steps = steps;
                        self.evals = evals;
                    }
                }
                self.info = Some(info);
            }
            TrainEvent::Step(m) => self.steps.push(m),
            TrainEvent::Eval(e) => self.evals.push(e),
            TrainEvent::CheckpointSaved { path, .. } => self.last_checkpoint = Some(path),
            TrainEvent::Paused { .. } => self.paused = true,
            TrainEvent::Resumed { .. } => self.paused = false,
            TrainEvent::Generated { .. } => {}
            TrainEvent::Finished(summary) => {
                self.paused = false;
                self.summary = Some(summary);
            }
            TrainEvent::Failed { error, last_checkpoint } => {
                self.paused = false;
                self.preparing = None;
                self.failure = Some((error, last_checkpoint));
            }
        }
    }

    /// Shows a finished run from its directory (its metrics), without training.
    pub fn show_run(&mut self, run_dir: &std::path::Path) -> crate::Result<()> {
        let (steps, evals) = read_metrics(run_dir)?;
        *self = Self { steps, evals, ..Default::default() };
        self.summary = Some(RunSummary {
            run_dir: run_dir.to_path_buf(),
            steps: self.steps.last().map_or(0, |s| s.step),
            stopped_early: false,
            final_checkpoint: run_dir.join(crate::train::FINAL_DIR),
            final_loss: self.steps.last().map(|s| s.loss),
            final_eval: self.evals.last().cloned(),
        });
        Ok(())
    }

    pub fn status_line(&self) -> String {
        if let Some((error, _)) = &self.failure {
            return format!("Failed: {}", error.lines().next().unwrap_or(""));
        }
        if let Some(summary) = &self.summary {
            return format!("{} after {} steps", if summary.stopped_early { "Stopped" } else { "Finished" }, summary.steps);
        }
        if let Some(what) = &self.preparing {
            return what.clone();
        }
        match (self.steps.last(), self.paused) {
            (Some(m), true) => format!("Paused at step {}", m.step),
            (Some(m), false) => format!("Step {}/{}, loss {:.4}", m.step, m.total_steps, m.loss),
            (None, _) if self.handle.is_some() => "Starting…".into(),
            _ => "Idle".into(),
        }
    }
}

impl WgtuneApp {
    pub fn training_ui(&mut self, ui: &mut egui::Ui) {
        ui.heading("Training");
        let running = self.training.is_running();
        ui.horizontal(|ui| {
            if ui.add_enabled(!running, egui::Button::new("Start training")).clicked() {
                self.start_training(RunStart::New);
            }
            if self.training.paused {
                if ui.add_enabled(running, egui::Button::new("Resume")).clicked() {
                    self.training.send(TrainCommand::Resume);
                }
            } else if ui.add_enabled(running, egui::Button::new("Pause")).clicked() {
                self.training.send(TrainCommand::Pause);
            }
            if ui.add_enabled(running, egui::Button::new("Stop")).clicked() {
                self.training.send(TrainCommand::Stop);
            }
            ui.separator();
            if ui.add_enabled(!running, egui::Button::new("Resume a run…")).clicked() {
                self.jobs.pick(PickKind::RunFolder);
            }
        });
        if let Some(error) = &self.training.start_error {
            error_ui(ui, error);
        }
        if let Some((error, checkpoint)) = &self.training.failure {
            let mut text = format!("The run failed: {error}");
            if let Some(dir) = checkpoint {
                text.push_str(&format!("\nThe last good checkpoint is {}; use “Resume a run…” to continue from it.", dir.display()));
            }
            error_ui(ui, &text);
        }
        if let Some(what) = &self.training.preparing {
            ui.horizontal(|ui| {
                ui.spinner();
                ui.label(what);
            });
        }
        self.confirm_overwrite_ui(ui);
        progress_ui(ui, &self.training);
        skipped_ui(ui, &self.training);
        if let Some(summary) = &self.training.summary {
            ui.label(format!(
                "{} after {} steps. Trained weights: {}",
                if summary.stopped_early { "Stopped" } else { "Finished" },
                summary.steps,
                display_path(&summary.final_checkpoint)
            ));
        }
        plots_ui(ui, &self.training);
    }
}

impl WgtuneApp {
    /// Asks before a new run replaces the one already in its output folder.
    fn confirm_overwrite_ui(&mut self, ui: &mut egui::Ui) {
        if !self.training.confirm_overwrite {
            return;
        }
        let run_dir = self.settings.config.output_dir.clone();
        let resumable = crate::train::checkpoint::latest(&run_dir).is_some();
        let modal = egui::Modal::new(egui::Id::unique("confirm-overwrite-run")).show(ui.ctx(), |ui| {
            ui.heading("The output folder already holds a run");
            ui.label(format!(
                "{} has files from an earlier run. Starting a new run there deletes its checkpoints, metrics and trained weights (other files are left alone).",
                display_path(&run_dir)
            ));
            ui.horizontal(|ui| {
                if ui.button("Replace the earlier run").clicked() {
                    self.training.confirm_overwrite = false;
                    self.start_training(RunStart::Overwrite);
                }
                if resumable && ui.button("Resume it instead").clicked() {
                    self.training.confirm_overwrite = false;
                    self.resume_run(run_dir.clone());
                }
                if ui.button("Cancel").clicked() {
                    self.training.confirm_overwrite = false;
                }
            });
        });
        if modal.should_close() {
            self.training.confirm_overwrite = false;
        }
    }
}

/// The records the run left out: the first few, and where the full list is.
fn skipped_ui(ui: &mut egui::Ui, t: &TrainingPanel) {
    let Some(info) = &t.info else { return };
    if info.skipped_records == 0 {
        return;
    }
    ui.collapsing(format!("{} records skipped", info.skipped_records), |ui| {
        for line in &info.first_skipped {
            ui.label(line);
        }
        ui.label(format!("All of them, with file, line and reason: {}", display_path(&info.run_dir.join(SKIPPED_FILE))));
    });
}

fn progress_ui(ui: &mut egui::Ui, t: &TrainingPanel) {
    let Some(last) = t.steps.last() else { return };
    let fraction = last.step as f32 / last.total_steps.max(1) as f32;
    ui.add(egui::ProgressBar::new(fraction).text(format!("step {} / {}", last.step, last.total_steps)));
    ui.horizontal_wrapped(|ui| {
        ui.label(format!("epoch {:.2}", last.epoch));
        ui.separator();
        ui.label(format!("loss {:.4}", last.loss));
        ui.separator();
        ui.label(format!("{:.0} tokens/s", last.tokens_per_second));
        ui.separator();
        ui.label(format!("elapsed {}", clock(last.elapsed_seconds)));
        ui.separator();
        ui.label(format!("ETA {}", clock(last.eta_seconds)));
        if let Some(info) = &t.info {
            ui.separator();
            ui.label(format!("{} of {} parameters trainable", info.trainable_parameters, info.total_parameters));
        }
    });
    if let Some(e) = t.evals.last()
        && let Some(c) = &e.classification
    {
        ui.label(format!(
            "validation at step {}: loss {:.4}, accuracy {:.1}%, macro F1 {:.1}% ({} records)",
            e.step,
            e.loss,
            100.0 * c.accuracy,
            100.0 * c.macro_f1,
            c.examples
        ));
    } else if let Some(e) = t.evals.last() {
        let answers = match &e.generation {
            Some(g) => format!(
                "; {} answers: exact match {:.0}%, token F1 {:.0}%",
                g.summary.examples,
                100.0 * g.summary.exact_match,
                100.0 * g.summary.token_f1
            ),
            None => String::new(),
        };
        ui.label(format!(
            "validation at step {}: loss {:.4}, perplexity {:.2}, accuracy {:.1}%{answers}",
            e.step,
            e.loss,
            e.perplexity,
            100.0 * e.accuracy
        ));
        if let Some(g) = &e.generation {
            answers_ui(ui, e.step, g);
        }
    }
}

/// What the model wrote for a few validation records at the last evaluation: the user watches
/// it learn.
fn answers_ui(ui: &mut egui::Ui, step: usize, scores: &crate::train::GenerationScores) {
    egui::CollapsingHeader::new(format!("Answers at step {step}")).id_salt("answers").show(ui, |ui| {
        for a in &scores.answers {
            ui.label(format!("{} {}", super::evaluate_panel::mark(&a.scores), a.question));
            ui.label(format!("    model: {}", a.answer));
            ui.label(format!("    reference: {}", a.reference));
        }
    });
}

const RAW: egui::Color32 = egui::Color32::from_rgb(230, 120, 110);
const SMOOTHED: egui::Color32 = egui::Color32::from_rgb(90, 150, 240);
const VALIDATION: egui::Color32 = egui::Color32::from_rgb(120, 210, 120);

fn plots_ui(ui: &mut egui::Ui, t: &TrainingPanel) {
    if t.steps.is_empty() {
        return;
    }
    let loss: Vec<[f64; 2]> = t.steps.iter().map(|m| [m.step as f64, m.loss]).collect();
    let smoothed = smooth(&loss, 0.9);
    let validation: Vec<[f64; 2]> = t.evals.iter().map(|e| [e.step as f64, e.loss]).collect();
    let lr: Vec<[f64; 2]> = t.steps.iter().map(|m| [m.step as f64, m.lr]).collect();
    let grad: Vec<[f64; 2]> = t.steps.iter().filter(|m| !m.skipped).map(|m| [m.step as f64, m.grad_norm]).collect();

    ui.label(egui::RichText::new("Loss").strong());
    Plot::new("loss-plot").height(260.0).legend(Legend::default()).x_axis_label("step").show(ui, |plot| {
        plot.line(Line::new("training loss", loss).color(RAW).width(1.0));
        plot.line(Line::new("smoothed", smoothed).color(SMOOTHED).width(2.0));
        if !validation.is_empty() {
            // One name, one colour, one legend entry for the line and its points.
            plot.line(Line::new("validation loss", validation.clone()).color(VALIDATION).width(2.0));
            plot.points(Points::new("validation loss", validation).color(VALIDATION).radius(3.5));
        }
    });
    ui.columns(2, |columns| {
        columns[0].label(egui::RichText::new("Learning rate").strong());
        Plot::new("lr-plot").height(160.0).show(&mut columns[0], |plot| {
            plot.line(Line::new("learning rate", lr));
        });
        columns[1].label(egui::RichText::new("Gradient norm").strong());
        Plot::new("grad-plot").height(160.0).show(&mut columns[1], |plot| {
            plot.line(Line::new("gradient norm", grad));
        });
    });
}

/// Exponential moving average with bias correction, like TensorBoard's smoothing.
fn smooth(points: &[[f64; 2]], weight: f64) -> Vec<[f64; 2]> {
    let mut average = 0.0;
    points
        .iter()
        .enumerate()
        .map(|(i, [x, y])| {
            average = weight * average + (1.0 - weight) * y;
            [*x, average / (1.0 - weight.powi(i as i32 + 1))]
        })
        .collect()
}

fn clock(seconds: f64) -> String {
    let s = seconds.max(0.0) as u64;
    format!("{}:{:02}:{:02}", s / 3600, (s % 3600) / 60, s % 60)
}
