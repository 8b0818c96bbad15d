//! The Evaluate tab: the base model and the fine-tuned one answer the held-out records, and the
//! tab shows their scores side by side and the answers worth reading; for a classifier, the
//! classes' scores, the confusion matrix as a heat map, and the records it labels.

use eframe::egui;

use super::app::WgtuneApp;
use crate::classify::{ClassificationReport, ClassificationScores, ClassifiedBy, LabelSet};
use crate::eval::{Answer, AnswerScores, EvalReport};

/// Both models' reports, the base first.
#[derive(Clone, Debug)]
pub enum Evaluation {
    /// Generated answers against the records' replies.
    Generation { base: EvalReport, tuned: EvalReport },
    /// Classes against the records' labels (the base model zero-shot unless it has a head).
    Classification { base: ClassificationReport, tuned: ClassificationReport, labels: LabelSet },
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
            Some(Ok(Evaluation::Generation { base, tuned })) => {
                scores_ui(ui, base, tuned);
                ui.add_space(8.0);
                ui.checkbox(&mut self.evaluate.show_all, "Show every answer (not only those that changed or are wrong)");
                answers_ui(ui, base, tuned, self.evaluate.show_all);
            }
            Some(Ok(Evaluation::Classification { base, tuned, labels })) => {
                class_scores_ui(ui, base, tuned);
                ui.add_space(8.0);
                ui.label("Confusion matrix of the fine-tuned model (rows: true class, columns: predicted):");
                confusion_ui(ui, &tuned.scores, labels);
                ui.add_space(8.0);
                ui.checkbox(&mut self.evaluate.show_all, "Show every record (not only those that changed or are wrong)");
                class_answers_ui(ui, base, tuned, self.evaluate.show_all);
            }
            Some(Err(e)) => {
                ui.colored_label(ui.visuals().error_fg_color, e);
            }
            None => {}
        }
    }
}

fn scores_ui(ui: &mut egui::Ui, base: &EvalReport, tuned: &EvalReport) {
    let skipped = tuned.skipped.len();
    let note = if skipped > 0 { format!(" ({skipped} could not be asked)") } else { String::new() };
    ui.label(format!("{} records answered{note}", tuned.summary.examples));
    measures_grid_ui(ui, "Base model", &base.summary.measures(), &tuned.summary.measures());
}

/// Rows of measures, base and fine-tuned side by side, each cell labelled for screen readers
/// (and the GUI test) with its row and column: "Fine-tuned, Exact match: 75.0 %".
fn measures_grid_ui(ui: &mut egui::Ui, base_name: &str, base: &[(&str, f64)], tuned: &[(&str, f64)]) {
    egui::Grid::new("scores").striped(true).num_columns(3).show(ui, |ui| {
        ui.strong("");
        ui.strong(base_name);
        ui.strong("Fine-tuned");
        ui.end_row();
        for ((name, base), (_, tuned)) in base.iter().zip(tuned) {
            ui.label(*name);
            for (model, value) in [(base_name, base), ("Fine-tuned", tuned)] {
                let text = format!("{:.1} %", 100.0 * value);
                let label = format!("{model}, {name}: {text}");
                let cell = ui.label(&text);
                cell.ctx.accesskit_node_builder(cell.id, |node| node.set_label(label));
            }
            ui.end_row();
        }
    });
}

fn class_scores_ui(ui: &mut egui::Ui, base: &ClassificationReport, tuned: &ClassificationReport) {
    ui.label(format!("{} records classified", tuned.scores.examples));
    let base_name = match base.by {
        ClassifiedBy::ZeroShot => "Base model (zero-shot)",
        ClassifiedBy::Head => "Base model",
    };
    measures_grid_ui(ui, base_name, &base.scores.measures(), &tuned.scores.measures());
    ui.collapsing("Per class (fine-tuned)", |ui| {
        egui::Grid::new("per-class").striped(true).num_columns(5).show(ui, |ui| {
            for heading in ["Class", "Precision", "Recall", "F1", "Records"] {
                ui.strong(heading);
            }
            ui.end_row();
            for c in &tuned.scores.per_class {
                ui.label(&c.label);
                for value in [c.precision, c.recall, c.f1] {
                    ui.label(format!("{:.1} %", 100.0 * value));
                }
                ui.label(c.support.to_string());
                ui.end_row();
            }
        });
    });
}

/// The confusion matrix as a heat map: each cell shaded by its share of its row (its class),
/// the diagonal in the selection colour, mistakes in the error colour.
fn confusion_ui(ui: &mut egui::Ui, scores: &ClassificationScores, labels: &LabelSet) {
    let visuals = ui.visuals().clone();
    egui::Grid::new("confusion").num_columns(labels.len() + 1).spacing([4.0, 4.0]).show(ui, |ui| {
        ui.label("");
        for name in &labels.names {
            ui.strong(name);
        }
        ui.end_row();
        for (row, counts) in scores.confusion.iter().enumerate() {
            ui.strong(labels.name(row));
            let total = counts.iter().sum::<usize>().max(1) as f32;
            for (column, &count) in counts.iter().enumerate() {
                let base = if row == column { visuals.selection.bg_fill } else { visuals.error_fg_color };
                let fill = base.gamma_multiply(count as f32 / total);
                let cell =
                    egui::Frame::NONE.fill(fill).inner_margin(egui::Margin::symmetric(10, 4)).show(ui, |ui| ui.label(count.to_string()));
                let label = format!("{} predicted as {}: {count}", labels.name(row), labels.name(column));
                let response = cell.inner;
                response.ctx.accesskit_node_builder(response.id, |node| node.set_label(label));
            }
            ui.end_row();
        }
    });
}

fn class_answers_ui(ui: &mut egui::Ui, base: &ClassificationReport, tuned: &ClassificationReport, show_all: bool) {
    let shown: Vec<_> =
        base.answers.iter().zip(&tuned.answers).filter(|(b, t)| show_all || b.predicted != t.predicted || !t.correct()).collect();
    if shown.is_empty() {
        ui.label("Every record has the same class from both models, and the right one.");
        return;
    }
    egui::ScrollArea::vertical().id_salt("class-answers").show(ui, |ui| {
        for (base, tuned) in shown {
            egui::Frame::group(ui.style()).show(ui, |ui| {
                ui.strong(format!("Line {}: {}", tuned.line, tuned.text.trim()));
                ui.label(format!("Label: {}", tuned.reference));
                ui.label(format!("Base model: {} ({:.0} %)", base.predicted, 100.0 * base.confidence));
                let verdict = if tuned.correct() { "right" } else { "wrong" };
                ui.label(format!("Fine-tuned ({verdict}): {} ({:.0} %)", tuned.predicted, 100.0 * tuned.confidence));
            });
        }
    });
}

fn answers_ui(ui: &mut egui::Ui, base: &EvalReport, tuned: &EvalReport, show_all: bool) {
    let pairs = base.answers.iter().zip(&tuned.answers);
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

/// How an answer reads at a glance: right (after normalising), close (contains the reference),
/// wrong. Words, not symbols: egui's bundled fonts have no check or cross glyph.
pub(super) fn mark(scores: &AnswerScores) -> &'static str {
    if scores.normalized {
        "(right)"
    } else if scores.contains {
        "(close)"
    } else {
        "(wrong)"
    }
}
