//! The Evaluate tab: the base model and the fine-tuned one answer the held-out records, and the
//! tab shows their scores side by side and the answers worth reading.

use eframe::egui;

use super::app::WgtuneApp;
use crate::eval::{Answer, AnswerScores, EvalReport};

/// Both models' reports, the base first.
#[derive(Clone, Debug)]
pub struct Evaluation {
    pub base: EvalReport,
    pub tuned: EvalReport,
}

#[derive(Default)]
pub struct EvaluatePanel {
    pub running: bool,
    /// Which model is answering, and how far it is.
    pub progress: Option<(&'static str, usize, usize)>,
    pub result: Option<Result<Evaluation, String>>,
    /// Show every answer, not only those that changed or are wrong.
    pub show_all: bool,
}

impl EvaluatePanel {
    pub fn finished(&mut self, result: Result<Evaluation, String>) {
        self.running = false;
        self.progress = None;
        self.result = Some(result);
    }
}

impl WgtuneApp {
    pub fn evaluate_ui(&mut self, ui: &mut egui::Ui) {
        ui.heading("Evaluate");
        let data = &self.settings.config.data;
        let file = data.validation_file.clone().unwrap_or_else(|| data.train_file.clone());
        let trained = if self.training.is_running() { None } else { self.trained_weights() };
        if file.as_os_str().is_empty() || trained.is_none() {
            ui.label("Train a model first (or resume a run): the evaluation compares it with its base model.");
            return;
        }
        let held_out = if data.validation_file.is_some() { "the validation file" } else { "the training file (no validation file chosen)" };
        ui.label(format!("Records: {} — {held_out}. Answers are greedy, up to the playground's max new tokens.", file.display()));
        let start = ui.add_enabled(!self.evaluate.running, egui::Button::new("Evaluate base and fine-tuned"));
        if start.clicked()
            && let Some(trained) = trained
        {
            self.evaluate.running = true;
            self.evaluate.result = None;
            let max_new_tokens = self.settings.generation.max_new_tokens;
            self.jobs.evaluate(
                self.settings.config.model.clone(),
                trained,
                data.clone(),
                file,
                self.settings.config.device,
                max_new_tokens,
            );
        }
        if let Some((which, done, total)) = self.evaluate.progress {
            ui.add(egui::ProgressBar::new(done as f32 / total.max(1) as f32).text(format!("{which}: {done} of {total} answered")));
        } else if self.evaluate.running {
            ui.spinner();
        }
        match &self.evaluate.result {
            Some(Ok(evaluation)) => {
                scores_ui(ui, evaluation);
                ui.add_space(8.0);
                ui.checkbox(&mut self.evaluate.show_all, "Show every answer (not only those that changed or are wrong)");
                answers_ui(ui, evaluation, self.evaluate.show_all);
            }
            Some(Err(e)) => {
                ui.colored_label(ui.visuals().error_fg_color, e);
            }
            None => {}
        }
    }
}

fn scores_ui(ui: &mut egui::Ui, evaluation: &Evaluation) {
    let skipped = evaluation.tuned.skipped.len();
    let note = if skipped > 0 { format!(" ({skipped} could not be asked)") } else { String::new() };
    ui.label(format!("{} records answered{note}", evaluation.tuned.summary.examples));
    egui::Grid::new("scores").striped(true).num_columns(3).show(ui, |ui| {
        ui.strong("");
        ui.strong("Base model");
        ui.strong("Fine-tuned");
        ui.end_row();
        let (base, tuned) = (evaluation.base.summary.measures(), evaluation.tuned.summary.measures());
        for ((name, base), (_, tuned)) in base.into_iter().zip(tuned) {
            ui.label(name);
            for (model, value) in [("Base model", base), ("Fine-tuned", tuned)] {
                let text = format!("{:.1} %", 100.0 * value);
                // Screen readers (and the GUI test) read the cell with its row and column:
                // "Fine-tuned, Exact match: 75.0 %".
                let label = format!("{model}, {name}: {text}");
                let cell = ui.label(&text);
                cell.ctx.accesskit_node_builder(cell.id, |node| node.set_label(label));
            }
            ui.end_row();
        }
    });
}

fn answers_ui(ui: &mut egui::Ui, evaluation: &Evaluation, show_all: bool) {
    let pairs = evaluation.base.answers.iter().zip(&evaluation.tuned.answers);
    let worth_reading = |(base, tuned): &(&Answer, &Answer)| show_all || base.answer != tuned.answer || !tuned.scores.contains;
    let shown: Vec<_> = pairs.filter(worth_reading).collect();
    if shown.is_empty() {
        ui.label("Every answer is the same for both models, and right.");
        return;
    }
    egui::ScrollArea::vertical().show(ui, |ui| {
        for (base, tuned) in shown {
            egui::Frame::group(ui.style()).show(ui, |ui| {
                ui.strong(format!("Line {}: {}", tuned.line, tuned.question.trim()));
                ui.label(format!("Reference: {}", tuned.reference.trim()));
                ui.label(format!("Base model: {}", base.answer));
                ui.label(format!("Fine-tuned {}: {}", mark(&tuned.scores), tuned.answer));
            });
        }
    });
}

/// How an answer reads at a glance: ✔ right (after normalising), ≈ contains the reference, ✘ wrong.
pub(super) fn mark(scores: &AnswerScores) -> &'static str {
    if scores.normalized {
        "✔"
    } else if scores.contains {
        "≈"
    } else {
        "✘"
    }
}
