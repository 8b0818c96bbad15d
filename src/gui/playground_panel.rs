//! The playground: a conversation with the fine-tuned model, and with the base model beside it,
//! each side keeping its own history. The chat template renders the whole history with the system
//! prompt; replies stream in as they are generated and can be stopped; the context each side
//! uses is shown against the model's.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use eframe::egui;

use super::app::WgtuneApp;
use super::playground::Slot;
use crate::generate::ChatReply;
use crate::tokenizer::Message;
use crate::train::TrainCommand;

pub struct PlaygroundPanel {
    pub system: String,
    /// The message being written.
    pub input: String,
    /// Ask the base model too, in a conversation of its own beside the fine-tuned one's.
    pub with_base: bool,
    pub base: Side,
    pub tuned: Side,
}

impl Default for PlaygroundPanel {
    fn default() -> Self {
        Self { system: String::new(), input: String::new(), with_base: true, base: Side::default(), tuned: Side::default() }
    }
}

/// One model's side of the playground.
#[derive(Default)]
pub struct Side {
    /// The conversation so far: user and assistant turns, alternating.
    pub history: Vec<Message>,
    /// The reply being written, as it streams in.
    pub partial: Option<String>,
    pub busy: bool,
    pub error: Option<String>,
    /// Tokens the conversation takes after the last reply, and the model's context.
    pub context: Option<(usize, usize)>,
    stop: Arc<AtomicBool>,
}

impl Side {
    /// The conversation as plain text, for the clipboard.
    pub fn transcript(&self) -> String {
        self.history.iter().map(|m| format!("{}: {}", speaker(&m.role), m.content)).collect::<Vec<_>>().join("\n\n")
    }
}

fn speaker(role: &str) -> &'static str {
    if role == "user" { "You" } else { "Model" }
}

impl PlaygroundPanel {
    fn side(&mut self, slot: Slot) -> &mut Side {
        match slot {
            Slot::Base => &mut self.base,
            Slot::Tuned => &mut self.tuned,
        }
    }

    pub fn streaming(&mut self, slot: Slot, text: String) {
        let side = self.side(slot);
        if side.busy {
            side.partial = Some(text);
        }
    }

    /// A reply arrived (or failed): it joins the history; after a failure the message goes back
    /// into the input, so that it can be sent again.
    pub fn finished(&mut self, slot: Slot, result: Result<ChatReply, String>) {
        let side = self.side(slot);
        side.busy = false;
        side.partial = None;
        match result {
            Ok(reply) => {
                side.history.push(Message::new("assistant", &reply.text));
                side.context = (reply.tokens > 0).then_some((reply.tokens, reply.context));
                side.error = None;
            }
            Err(error) => {
                side.error = Some(error);
                let unanswered = side.history.pop_if(|m| m.role == "user").map(|m| m.content);
                if let Some(message) = unanswered
                    && self.input.trim().is_empty()
                {
                    self.input = message;
                }
            }
        }
    }

    pub fn busy(&self) -> bool {
        self.base.busy || self.tuned.busy
    }

    /// The turns to send for `side`: the system prompt, if any, then its history.
    fn messages(&self, slot: Slot) -> Vec<Message> {
        let history = match slot {
            Slot::Base => &self.base.history,
            Slot::Tuned => &self.tuned.history,
        };
        let system = self.system.trim();
        (!system.is_empty()).then(|| Message::new("system", system)).into_iter().chain(history.iter().cloned()).collect()
    }
}

impl WgtuneApp {
    pub fn playground_ui(&mut self, ui: &mut egui::Ui) {
        ui.heading("Playground");
        let Some(context) = self.model.summary.as_ref().map(|s| s.config.max_position_embeddings) else {
            ui.label("Choose a model first.");
            return;
        };
        let g = &mut self.settings.generation;
        ui.horizontal(|ui| {
            ui.add(egui::Slider::new(&mut g.temperature, 0.0..=2.0).text("temperature"));
            ui.add(egui::Slider::new(&mut g.max_new_tokens, 1..=512).text("max new tokens"));
            ui.checkbox(&mut g.chat_template, "chat template");
            ui.checkbox(&mut self.playground.with_base, "ask the base model too");
        });
        let system_label = ui.label("System prompt");
        ui.add(
            egui::TextEdit::multiline(&mut self.playground.system)
                .desired_rows(1)
                .desired_width(f32::INFINITY)
                .hint_text("none: the chat template's own default, if it has one"),
        )
        .labelled_by(system_label.id);

        let paused = self.training.paused;
        let trained = if self.training.is_running() { None } else { self.trained_weights() };
        let can_tune = paused || trained.is_some();
        let busy = self.playground.busy();
        let message_label = ui.label("Message");
        let field = ui
            .add(egui::TextEdit::multiline(&mut self.playground.input).desired_rows(2).desired_width(f32::INFINITY))
            .labelled_by(message_label.id);
        let enter = field.has_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter) && !i.modifiers.shift);
        ui.horizontal(|ui| {
            let ready = !busy && !self.playground.input.trim().is_empty();
            if ui.add_enabled(ready, egui::Button::new("Send")).clicked() || (enter && ready) {
                self.send(paused, trained, can_tune);
            }
            if ui.add_enabled(busy, egui::Button::new("Stop")).clicked() {
                for side in [&self.playground.base, &self.playground.tuned] {
                    side.stop.store(true, Ordering::Relaxed);
                }
            }
            if ui.add_enabled(!busy, egui::Button::new("Clear")).clicked() {
                for side in [&mut self.playground.base, &mut self.playground.tuned] {
                    *side = Side::default();
                }
            }
        });
        if !can_tune {
            ui.label("The fine-tuned side answers once a run is paused or finished.");
        }
        let with_base = self.playground.with_base || !can_tune;
        if with_base && can_tune {
            ui.columns(2, |columns| {
                side_ui(&mut columns[0], "Base model", &self.playground.base, context);
                side_ui(&mut columns[1], "Fine-tuned", &self.playground.tuned, context);
            });
        } else if can_tune {
            side_ui(ui, "Fine-tuned", &self.playground.tuned, context);
        } else {
            side_ui(ui, "Base model", &self.playground.base, context);
        }
    }

    /// Sends the message to each side that answers: the base model (when asked, or when there is
    /// nothing fine-tuned yet) and the fine-tuned model (a paused run's, or the last run's).
    fn send(&mut self, paused: bool, trained: Option<std::path::PathBuf>, can_tune: bool) {
        let text = std::mem::take(&mut self.playground.input).trim().to_string();
        let settings = self.settings.generation.clone();
        let (model, device) = (self.settings.config.model.clone(), self.settings.config.device);
        let mut slots = Vec::new();
        if self.playground.with_base || !can_tune {
            slots.push(Slot::Base);
        }
        if can_tune {
            slots.push(Slot::Tuned);
        }
        for slot in slots {
            let side = self.playground.side(slot);
            side.history.push(Message::new("user", &text));
            side.busy = true;
            side.partial = Some(String::new());
            side.error = None;
            side.stop = Arc::new(AtomicBool::new(false));
            let stop = side.stop.clone();
            let messages = self.playground.messages(slot);
            match slot {
                Slot::Tuned if paused => self.training.send(TrainCommand::Generate { messages, settings: settings.clone() }),
                Slot::Tuned => {
                    let trained = trained.clone();
                    self.playground_worker.generate(slot, model.clone(), trained, device, messages, settings.clone(), stop)
                }
                Slot::Base => self.playground_worker.generate(slot, model.clone(), None, device, messages, settings.clone(), stop),
            }
        }
    }
}

fn side_ui(ui: &mut egui::Ui, title: &str, side: &Side, context: usize) {
    ui.horizontal(|ui| {
        let used = side.context.map_or("–".to_string(), |(tokens, _)| tokens.to_string());
        ui.label(egui::RichText::new(format!("{title} · context {used} / {context} tokens")).strong());
        if ui.add_enabled(!side.history.is_empty(), egui::Button::new(format!("Copy {title}"))).clicked() {
            ui.ctx().copy_text(side.transcript());
        }
    });
    egui::Frame::group(ui.style()).show(ui, |ui| {
        ui.set_min_height(80.0);
        ui.set_min_width(ui.available_width());
        for message in &side.history {
            ui.label(format!("{}: {}", speaker(&message.role), message.content));
        }
        if let Some(partial) = &side.partial {
            ui.horizontal(|ui| {
                ui.spinner();
                ui.label(format!("Model: {partial}"));
            });
        }
        if let Some(error) = &side.error {
            ui.colored_label(ui.visuals().error_fg_color, error);
        }
    });
}
