//! The Runs tab: the runs under the output folder with their settings and final metrics, their
//! loss curves overlaid to compare settings, and any of them reopened for the Playground,
//! Evaluate and Export tabs.

use std::collections::BTreeSet;
use std::path::PathBuf;

use eframe::egui;
use egui_plot::{Legend, Line, Plot};

use super::app::WgtuneApp;
use crate::train::RunRecord;

#[derive(Default)]
pub struct RunsPanel {
    pub loading: bool,
    pub runs: Vec<RunRecord>,
    /// Runs whose curves the plot shows, by folder.
    pub overlaid: BTreeSet<PathBuf>,
    /// The run being renamed, and the name typed so far.
    pub renaming: Option<(PathBuf, String)>,
    /// Set when a rename starts: its field takes the keyboard.
    focus_rename: bool,
    /// The run the user asked to delete, until they confirm or cancel.
    pub confirm_delete: Option<PathBuf>,
    /// Why the last rename or deletion was refused.
    pub error: Option<String>,
}

/// What the user asked of one run in the table.
enum RunAction {
    Open(PathBuf),
    StartRename(PathBuf, String),
    Rename,
    CancelRename,
    AskDelete(PathBuf),
}

impl WgtuneApp {
    /// The folder the Runs tab lists: the one that holds the current run directory.
    pub fn runs_folder(&self) -> PathBuf {
        let dir = &self.settings.config.output_dir;
        dir.parent().filter(|p| !p.as_os_str().is_empty()).map_or_else(|| PathBuf::from("."), PathBuf::from)
    }

    pub fn refresh_runs(&mut self) {
        self.runs.loading = true;
        self.jobs.list_runs(self.runs_folder());
    }

    pub fn runs_listed(&mut self, runs: Vec<RunRecord>) {
        self.runs.loading = false;
        // A fresh list keeps the overlay of runs still there, and shows the newest by default.
        self.runs.overlaid.retain(|dir| runs.iter().any(|r| &r.dir == dir));
        if self.runs.overlaid.is_empty()
            && let Some(newest) = runs.first()
        {
            self.runs.overlaid.insert(newest.dir.clone());
        }
        self.runs.runs = runs;
    }

    pub fn runs_ui(&mut self, ui: &mut egui::Ui) {
        ui.heading("Runs");
        ui.horizontal(|ui| {
            ui.label(format!("Runs in {}", self.runs_folder().display()));
            if ui.add_enabled(!self.runs.loading, egui::Button::new("Refresh")).clicked() {
                self.refresh_runs();
            }
        });
        if self.runs.runs.is_empty() {
            ui.label(if self.runs.loading { "Reading the runs…" } else { "No runs here yet." });
            return;
        }
        if let Some(error) = &self.runs.error {
            ui.colored_label(ui.visuals().error_fg_color, error);
        }
        let mut action = None;
        egui::Grid::new("runs").striped(true).num_columns(9).show(ui, |ui| {
            for heading in ["Compare", "Run", "Settings", "Steps", "Loss", "Validation loss", "Validation score", "", ""] {
                ui.strong(heading);
            }
            ui.end_row();
            for run in &self.runs.runs {
                let mut shown = self.runs.overlaid.contains(&run.dir);
                if ui.checkbox(&mut shown, "").on_hover_text("Overlay its loss curve").changed() {
                    if shown {
                        self.runs.overlaid.insert(run.dir.clone());
                    } else {
                        self.runs.overlaid.remove(&run.dir);
                    }
                }
                match &mut self.runs.renaming {
                    Some((dir, name)) if dir == &run.dir => {
                        ui.horizontal(|ui| {
                            let field = ui.add(egui::TextEdit::singleline(name).desired_width(220.0));
                            if std::mem::take(&mut self.runs.focus_rename) {
                                field.request_focus();
                            }
                            let entered = field.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
                            if ui.button("Save name").clicked() || entered {
                                action = Some(RunAction::Rename);
                            }
                            if ui.button("Cancel").clicked() {
                                action = Some(RunAction::CancelRename);
                            }
                        });
                    }
                    _ => {
                        ui.label(run.name());
                    }
                }
                ui.label(run.settings());
                ui.label(run.last_step().map_or("–".into(), |s| format!("{} / {}", s.step, s.total_steps)));
                ui.label(run.last_step().map_or("–".into(), |s| format!("{:.4}", s.loss)));
                ui.label(run.last_eval().map_or("–".into(), |e| format!("{:.4}", e.loss)));
                let score = run.last_eval().and_then(|e| e.headline());
                ui.label(score.map_or("–".into(), |(name, value)| format!("{name} {:.1} %", 100.0 * value)));
                let opened = self.opened_run.as_ref() == Some(&run.dir);
                let label = if opened { "Opened" } else { "Open" };
                let button = ui.add_enabled(run.weights.is_some() && !opened, egui::Button::new(label));
                if button.on_hover_text("Use its weights in the Playground, Evaluate and Export tabs").clicked() {
                    action = Some(RunAction::Open(run.dir.clone()));
                }
                ui.horizontal(|ui| {
                    if ui.button("Rename").clicked() {
                        action = Some(RunAction::StartRename(run.dir.clone(), run.name()));
                    }
                    if ui.button("Delete…").clicked() {
                        action = Some(RunAction::AskDelete(run.dir.clone()));
                    }
                });
                ui.end_row();
            }
        });
        match action {
            Some(RunAction::Open(dir)) => {
                if let Some(run) = self.runs.runs.iter().find(|r| r.dir == dir).cloned() {
                    self.open_run(&run);
                }
            }
            Some(RunAction::StartRename(dir, name)) => {
                self.runs.renaming = Some((dir, name));
                self.runs.focus_rename = true;
            }
            Some(RunAction::Rename) => self.rename_run(),
            Some(RunAction::CancelRename) => self.runs.renaming = None,
            Some(RunAction::AskDelete(dir)) => self.runs.confirm_delete = Some(dir),
            None => {}
        }
        self.confirm_delete_ui(ui.ctx());
        ui.add_space(8.0);
        overlay_ui(ui, &self.runs);
    }

    /// Renames the run being renamed to the name typed; a refusal is shown above the table.
    fn rename_run(&mut self) {
        let Some((dir, name)) = self.runs.renaming.take() else { return };
        match crate::train::rename_run(&dir, &name) {
            Ok(renamed) => {
                // What pointed at the run follows it.
                for path in [&mut self.opened_run, &mut self.settings.last_run].into_iter().flatten() {
                    if *path == dir {
                        *path = renamed.clone();
                    }
                }
                if self.runs.overlaid.remove(&dir) {
                    self.runs.overlaid.insert(renamed);
                }
                self.runs.error = None;
                self.refresh_runs();
            }
            Err(e) => {
                self.runs.error = Some(e.to_string());
                self.runs.renaming = Some((dir, name));
            }
        }
    }

    /// Asks before a run is deleted, checkpoints and all; deletes it on the user's word.
    fn confirm_delete_ui(&mut self, ctx: &egui::Context) {
        let Some(dir) = self.runs.confirm_delete.clone() else { return };
        let name = dir.file_name().map_or_else(|| dir.display().to_string(), |n| n.to_string_lossy().into_owned());
        let mut answer = None;
        egui::Window::new("Delete this run?").collapsible(false).resizable(false).anchor(egui::Align2::CENTER_CENTER, [0.0, 0.0]).show(
            ctx,
            |ui| {
                ui.label(format!("{name}: its checkpoints, metrics and trained weights in {} are deleted for good.", dir.display()));
                ui.horizontal(|ui| {
                    if ui.button("Delete the run").clicked() {
                        answer = Some(true);
                    }
                    if ui.button("Keep it").clicked() {
                        answer = Some(false);
                    }
                });
            },
        );
        match answer {
            Some(true) => {
                self.runs.confirm_delete = None;
                match crate::train::delete_run(&dir) {
                    Ok(()) => {
                        if self.opened_run.as_ref() == Some(&dir) {
                            self.opened_run = None;
                        }
                        self.runs.overlaid.remove(&dir);
                        self.runs.error = None;
                        self.refresh_runs();
                    }
                    Err(e) => self.runs.error = Some(e.to_string()),
                }
            }
            Some(false) => self.runs.confirm_delete = None,
            None => {}
        }
    }

    /// Makes `run` the one whose weights the Playground, Evaluate and Export tabs use, with its
    /// model and data.
    fn open_run(&mut self, run: &RunRecord) {
        self.opened_run = Some(run.dir.clone());
        self.settings.last_run = Some(run.dir.clone());
        let model_changed = self.settings.config.model != run.config.model;
        self.settings.config = run.config.clone();
        if model_changed {
            self.select_model(run.config.model.clone());
        }
    }
}

/// The training loss of every run ticked for comparison, one line each, and below it their
/// validation scores (accuracy or exact match) where they have them.
fn overlay_ui(ui: &mut egui::Ui, panel: &RunsPanel) {
    let overlaid = || panel.runs.iter().filter(|r| panel.overlaid.contains(&r.dir));
    if overlaid().any(|r| r.evals.iter().any(|e| e.headline().is_some())) {
        ui.label(egui::RichText::new("Validation score (accuracy, or exact match of the answers), %").strong());
        Plot::new("runs-score-plot").height(180.0).legend(Legend::default()).x_axis_label("step").show(ui, |plot| {
            for run in overlaid() {
                let points: Vec<[f64; 2]> = run.evals.iter().filter_map(|e| Some([e.step as f64, 100.0 * e.headline()?.1])).collect();
                if !points.is_empty() {
                    plot.line(Line::new(run.name(), points).width(2.0));
                }
            }
        });
    }
    ui.label(egui::RichText::new("Training loss").strong());
    Plot::new("runs-plot").height(280.0).legend(Legend::default()).x_axis_label("step").show(ui, |plot| {
        for run in panel.runs.iter().filter(|r| panel.overlaid.contains(&r.dir)) {
            let points: Vec<[f64; 2]> = run.steps.iter().map(|s| [s.step as f64, s.loss]).collect();
            plot.line(Line::new(run.name(), points).width(1.5));
            let validation: Vec<[f64; 2]> = run.evals.iter().map(|e| [e.step as f64, e.loss]).collect();
            if !validation.is_empty() {
                plot.line(Line::new(format!("{} (validation)", run.name()), validation).width(2.5));
            }
        }
    });
}
