//! The model panel: choose a model (a folder or a GGUF file by dialog, an Ollama model by name,
//! the demo, recent ones, the Hugging Face cache) and see what it is.

use crate::inspect::human_count;
use eframe::egui;

use super::app::WgtuneApp;
use super::jobs::ModelSummary;
use super::picker::{PickKind, typed_path_ui};

#[derive(Default)]
pub struct ModelPanel {
    pub summary: Option<ModelSummary>,
    pub error: Option<String>,
    pub loading: bool,
    pub typed_path: String,
    /// A Hugging Face model id as typed.
    pub typed_id: String,
    /// Where the download of a model by id stands.
    pub download: Option<crate::download::DownloadProgress>,
    /// The Hub search as typed, and what it found.
    pub search: String,
    pub search_results: Option<Result<Vec<String>, String>>,
    /// Set when the frozen base was packed because the chosen model is a quantized GGUF: what
    /// the Model and Hyperparameters tabs say about it.
    pub frozen_base_note: Option<String>,
}

impl WgtuneApp {
    pub fn model_ui(&mut self, ui: &mut egui::Ui) {
        if self.model.summary.is_none() && !self.model.loading {
            self.welcome_ui(ui);
            ui.add_space(8.0);
        }
        ui.heading("Model");
        ui.label(format!(
            "A Hugging Face model folder (config.json, safetensors weights, tokenizer.json), a GGUF file, or an installed \
             Ollama model typed as ollama:NAME. Architectures: {}.",
            crate::model::Architecture::SUPPORTED.join(", ")
        ));
        ui.horizontal(|ui| {
            if ui.button("Open model folder…").clicked() {
                self.jobs.pick(PickKind::ModelFolder);
            }
            if ui.button("Open GGUF file…").clicked() {
                self.jobs.pick(PickKind::ModelFile);
            }
            if ui.button("Use demo model").on_hover_text("The small chat model bundled with wgtune").clicked() {
                match Self::bundled() {
                    Ok(bundle) => self.select_model(bundle.demo_model()),
                    Err(e) => self.model.error = Some(e),
                }
            }
        });

        let mut chosen = typed_path_ui(ui, "Model folder path", "Open model", &mut self.model.typed_path);
        // `owner/name`: from the cache, or downloaded into it (HF_ENDPOINT, HF_TOKEN apply).
        if let Some(id) = typed_path_ui(ui, "Hugging Face model id", "Download model", &mut self.model.typed_id) {
            chosen = Some(id);
        }
        if let Some(id) = self.hub_search_ui(ui) {
            self.model.typed_id = id.clone();
            chosen = Some(id.into());
        }
        if !self.settings.recent_models.is_empty() {
            ui.collapsing("Recent models", |ui| {
                for path in &self.settings.recent_models {
                    if ui.link(path.display().to_string()).clicked() {
                        chosen = Some(path.clone());
                    }
                }
            });
        }
        if !self.cached_models.is_empty() {
            ui.collapsing("In the Hugging Face cache", |ui| {
                for model in &self.cached_models {
                    if ui.link(&model.id).on_hover_text(model.path.display().to_string()).clicked() {
                        chosen = Some(model.path.clone());
                    }
                }
            });
        }
        if let Some(path) = chosen {
            self.select_model(path);
        }

        ui.add_space(8.0);
        if self.model.loading {
            ui.horizontal(|ui| {
                ui.spinner();
                ui.label("Reading the model…");
            });
            if let Some(progress) = &self.model.download {
                download_ui(ui, progress);
            }
        }
        if let Some(error) = &self.model.error {
            error_ui(ui, error);
        }
        if let Some(m) = &self.model.summary {
            let c = &m.config;
            egui::Grid::new("model-facts").num_columns(2).striped(true).show(ui, |ui| {
                let mut row = |name: &str, value: String| {
                    ui.label(name);
                    ui.label(value);
                    ui.end_row();
                };
                row("Model", display_path(&m.path));
                row("Architecture", format!("{} ({} layers, hidden {})", c.architecture.name(), c.num_hidden_layers, c.hidden_size));
                row(
                    "Attention",
                    format!("{} heads, {} key/value heads, head dim {}", c.num_attention_heads, c.num_key_value_heads, c.head_dim),
                );
                row("Parameters", format!("{} ({})", human_count(m.parameters), m.parameters));
                row("Stored as", m.storage.clone());
                if let Some(note) = &self.model.frozen_base_note {
                    row("Frozen base", note.clone());
                }
                row("Context length", format!("{} tokens", c.max_position_embeddings));
                row("Vocabulary", c.vocab_size.to_string());
                row("Chat template", if m.has_chat_template { "yes".into() } else { "no (alpaca prompts are used)".into() });
                let generic = crate::inspect::generic_paths(c);
                if !generic.is_empty() {
                    row("Without fused kernels", generic.join(", "));
                }
            });
            // What to train it with, sized to it (and to the dataset, once one is chosen).
            ui.add_space(6.0);
            self.presets_ui(ui);
        }
    }
}

impl WgtuneApp {
    /// A search of the Hub's models; returns the id clicked among the results.
    fn hub_search_ui(&mut self, ui: &mut egui::Ui) -> Option<String> {
        ui.horizontal(|ui| {
            let label = ui.label("Search the Hub");
            let field = ui
                .add(egui::TextEdit::singleline(&mut self.model.search).hint_text("qwen3, gemma-3, smollm").desired_width(280.0))
                .labelled_by(label.id);
            let entered = field.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
            let search = self.model.search.trim().to_string();
            if (ui.add_enabled(!search.is_empty(), egui::Button::new("Search")).clicked() || entered) && !search.is_empty() {
                self.model.search_results = None;
                self.jobs.search_models(search);
            }
        });
        let mut chosen = None;
        match &self.model.search_results {
            Some(Ok(ids)) if ids.is_empty() => {
                ui.weak("No model matches.");
            }
            Some(Ok(ids)) => {
                ui.horizontal_wrapped(|ui| {
                    for id in ids {
                        if ui.link(id).on_hover_text("Open it (downloaded into the cache unless it is there)").clicked() {
                            chosen = Some(id.clone());
                        }
                    }
                });
            }
            Some(Err(e)) => error_ui(ui, e),
            None => {}
        }
        chosen
    }
}

/// A download from the Hub: the file, which of how many, and its bytes so far.
pub fn download_ui(ui: &mut egui::Ui, p: &crate::download::DownloadProgress) {
    let fraction = if p.total > 0 { p.bytes as f32 / p.total as f32 } else { 0.0 };
    let mib = |bytes: u64| bytes as f64 / (1024.0 * 1024.0);
    let text = format!("Downloading {} ({} of {}): {:.1} / {:.1} MiB", p.file, p.index, p.files, mib(p.bytes), mib(p.total));
    ui.add(egui::ProgressBar::new(fraction).text(text));
}

/// A framed, red error message.
pub fn error_ui(ui: &mut egui::Ui, error: &str) {
    egui::Frame::group(ui.style()).stroke(egui::Stroke::new(1.0, ui.visuals().error_fg_color)).show(ui, |ui| {
        ui.colored_label(ui.visuals().error_fg_color, error);
    });
}

/// A path relative to the working directory when it lies inside it, as given otherwise.
pub fn display_path(path: &std::path::Path) -> String {
    let relative = std::env::current_dir().ok().and_then(|cwd| path.strip_prefix(cwd).ok().map(|p| p.to_path_buf()));
    relative.as_deref().unwrap_or(path).display().to_string()
}
