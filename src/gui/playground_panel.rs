//! The playground: one prompt, answered by the base model and by the fine-tuned one side by side.

use eframe::egui;

use super::app::WgtuneApp;
use super::playground::Slot;
use crate::train::TrainCommand;

#[derive(Default)]
pub struct PlaygroundPanel {
    pub prompt: String,
    pub base: Output,
    pub tuned: Output,
}

#[derive(Default)]
pub struct Output {
    pub text: Option<Result<String, String>>,
    pub busy: bool,
}

impl PlaygroundPanel {
    pub fn generated(&mut self, slot: Slot, prompt: String, result: Result<String, String>) {
        if prompt != self.prompt && !self.prompt.is_empty() {
            // An answer to an earlier prompt is still worth showing, marked as such.
            let result = result.map(|t| format!("(for “{prompt}”) {t}"));
            self.output(slot).text = Some(result);
        } else {
            self.output(slot).text = Some(result);
        }
        self.output(slot).busy = false;
    }

    fn output(&mut self, slot: Slot) -> &mut Output {
        match slot {
            Slot::Base => &mut self.base,
            Slot::Tuned => &mut self.tuned,
        }
    }
}

impl WgtuneApp {
    pub fn playground_ui(&mut self, ui: &mut egui::Ui) {
        ui.heading("Playground");
        if self.model.summary.is_none() {
            ui.label("Choose a model first.");
            return;
        }
        ui.label("Prompt");
        ui.add(egui::TextEdit::multiline(&mut self.playground.prompt).desired_rows(3).desired_width(f32::INFINITY));
        let g = &mut self.settings.generation;
        ui.horizontal(|ui| {
            ui.add(egui::Slider::new(&mut g.temperature, 0.0..=2.0).text("temperature"));
            ui.add(egui::Slider::new(&mut g.max_new_tokens, 1..=512).text("max new tokens"));
            ui.checkbox(&mut g.chat_template, "chat template");
        });
        let paused = self.training.paused;
        let trained = if self.training.is_running() { None } else { self.trained_weights() };
        let can_tune = paused || trained.is_some();
        let busy = self.playground.base.busy || self.playground.tuned.busy;
        if ui.add_enabled(!busy && !self.playground.prompt.trim().is_empty(), egui::Button::new("Generate")).clicked() {
            self.generate(paused, trained);
        }
        if !can_tune {
            ui.label("The fine-tuned column fills in once a run is paused or finished.");
        }
        ui.columns(2, |columns| {
            output_ui(&mut columns[0], "Base model", &self.playground.base);
            output_ui(&mut columns[1], "Fine-tuned", &self.playground.tuned);
        });
    }

    fn generate(&mut self, paused: bool, trained: Option<std::path::PathBuf>) {
        let prompt = self.playground.prompt.clone();
        let settings = self.settings.generation.clone();
        let model = self.settings.config.model.clone();
        let device = self.settings.config.device;
        self.playground.base.busy = true;
        self.playground_worker.generate(Slot::Base, model.clone(), None, device, prompt.clone(), settings.clone());
        if paused {
            self.playground.tuned.busy = true;
            self.training.send(TrainCommand::Generate { prompt, settings });
        } else if let Some(trained) = trained {
            self.playground.tuned.busy = true;
            self.playground_worker.generate(Slot::Tuned, model, Some(trained), device, prompt, settings);
        }
    }
}

fn output_ui(ui: &mut egui::Ui, title: &str, output: &Output) {
    ui.label(egui::RichText::new(title).strong());
    egui::Frame::group(ui.style()).show(ui, |ui| {
        ui.set_min_height(80.0);
        ui.set_min_width(ui.available_width());
        if output.busy {
            ui.spinner();
        }
        match &output.text {
            Some(Ok(text)) => {
                ui.label(text);
            }
            Some(Err(error)) => {
                ui.colored_label(ui.visuals().error_fg_color, error);
            }
            None => {}
        }
    });
}
