//! The dataset panel: choose a file, see the detected format, token statistics, problems with
//! their file and line, and the first examples with the trained tokens highlighted.

use std::collections::BTreeMap;

use crate::data::{DatasetFormat, Segment};
use crate::train::{ClassWeights, Task, TrainConfig};
use eframe::egui;

use super::app::WgtuneApp;
use super::jobs::DatasetPreview;
use super::model_panel::{display_path, download_ui, error_ui};
use super::picker::{PickKind, typed_path_ui};

#[derive(Default)]
pub struct DatasetPanel {
    pub preview: Option<DatasetPreview>,
    pub error: Option<String>,
    pub loading: bool,
    pub typed_path: String,
    pub typed_validation_path: String,
    /// The column mapping as typed, `prompt=question, completion=answer`.
    pub typed_columns: String,
    /// The training file's columns, which the mapping's drop-downs offer.
    pub file_columns: Vec<String>,
    /// Where the download of a dataset by id stands.
    pub download: Option<crate::download::DownloadProgress>,
    /// A starting point to apply once the dataset being read is previewed (the demo's).
    pub preset_on_preview: Option<crate::presets::Preset>,
}

impl WgtuneApp {
    pub fn dataset_ui(&mut self, ui: &mut egui::Ui) {
        ui.heading("Dataset");
        let mut changed = task_ui(ui, &mut self.settings.config);
        let classification = self.settings.config.task == Task::Classification;
        ui.label(if classification {
            "JSONL, JSON, CSV or Parquet records with `text` (and optionally `text_pair`) and a `label`, a string or an integer; \
             columns of other names through the mapping below. A Hugging Face dataset id (owner/name) typed as the path \
             reads its train split."
        } else {
            "JSONL, JSON, CSV or Parquet records: alpaca (instruction/input/output), chat (messages), ShareGPT (conversations), \
             prompt/completion, or text; columns of other names through the mapping below. A Hugging Face dataset id \
             (owner/name) typed as the path reads its train split (and, as the validation path, its validation split)."
        });
        ui.horizontal(|ui| {
            if ui.button("Open dataset…").clicked() {
                self.jobs.pick(PickKind::DatasetFile);
            }
            if ui.button("Use demo dataset").clicked() {
                match Self::bundled() {
                    Ok(bundle) => {
                        // Questions about invented countries, or product reviews to label by topic.
                        self.use_demo_data(if classification { bundle.reviews() } else { bundle.questions() });
                        changed = true;
                    }
                    Err(e) => self.dataset.error = Some(e),
                }
            }
            let file = &self.settings.config.data.train_file;
            if !file.as_os_str().is_empty() {
                ui.label(display_path(file));
            }
        });
        if let Some(path) = typed_path_ui(ui, "Dataset file path", "Open dataset", &mut self.dataset.typed_path) {
            self.select_dataset(path);
        }
        let data = &mut self.settings.config.data;
        ui.horizontal(|ui| {
            let label = ui.label("Format");
            let current = data.format.map_or("detect".to_string(), |f| f.name().to_string());
            egui::ComboBox::from_id_salt("dataset-format")
                .selected_text(current)
                .show_ui(ui, |ui| {
                    changed |= ui.selectable_value(&mut data.format, None, "detect").changed();
                    for format in DatasetFormat::ALL {
                        changed |= ui.selectable_value(&mut data.format, Some(format), format.name()).changed();
                    }
                })
                .response
                .labelled_by(label.id);
            if classification {
                let mut balanced = self.settings.config.class_weights == ClassWeights::Balanced;
                if ui
                    .checkbox(&mut balanced, "Weigh rare classes up")
                    .on_hover_text("Each class counts as much in the loss, however few its records")
                    .changed()
                {
                    self.settings.config.class_weights = if balanced { ClassWeights::Balanced } else { ClassWeights::None };
                }
            } else {
                changed |= ui.checkbox(&mut data.train_on_prompt, "Train on prompts too").changed();
                changed |= ui.checkbox(&mut data.packing, "Pack short examples").changed();
            }
        });
        if let Some(mapping) = columns_ui(ui, &mut self.dataset.typed_columns) {
            match crate::data::columns::parse(&mapping) {
                Ok(columns) => {
                    data.columns = columns;
                    changed = true;
                }
                Err(e) => self.dataset.error = Some(e.to_string()),
            }
        }
        if column_choices_ui(ui, &self.dataset.file_columns, &mut data.columns) {
            self.dataset.typed_columns = crate::data::columns::format(&data.columns);
            changed = true;
        }
        ui.horizontal(|ui| {
            ui.label("Validation");
            match &data.validation_file {
                Some(path) => {
                    ui.label(display_path(path));
                    if ui.small_button("Remove").on_hover_text("Use a held-out fraction instead").clicked() {
                        data.validation_file = None;
                        changed = true;
                    }
                }
                None => {
                    changed |= ui.add(egui::Slider::new(&mut data.validation_fraction, 0.0..=0.5).text("held-out fraction")).drag_stopped();
                    if ui.button("Validation file…").clicked() {
                        self.jobs.pick(PickKind::ValidationFile);
                    }
                }
            }
        });
        let typed_validation = if data.validation_file.is_none() {
            typed_path_ui(ui, "Validation file path", "Open validation file", &mut self.dataset.typed_validation_path)
        } else {
            None
        };
        if let Some(path) = typed_validation {
            self.select_validation(path);
        } else if changed {
            self.refresh_dataset();
        }

        ui.add_space(8.0);
        if self.dataset.loading {
            ui.horizontal(|ui| {
                ui.spinner();
                ui.label("Reading and tokenizing…");
            });
            if let Some(progress) = &self.dataset.download {
                download_ui(ui, progress);
            }
        }
        if let Some(error) = &self.dataset.error {
            error_ui(ui, error);
        }
        if let Some(preview) = &self.dataset.preview {
            preview_ui(ui, preview, &self.settings.config.data);
        }
    }
}

/// The task choice; true when it changed (the dataset is then read again for the new task).
fn task_ui(ui: &mut egui::Ui, config: &mut TrainConfig) -> bool {
    let before = config.task;
    ui.horizontal(|ui| {
        let label = ui.label("Task");
        egui::ComboBox::from_id_salt("task")
            .selected_text(task_label(config.task))
            .show_ui(ui, |ui| {
                for task in [Task::CausalLm, Task::Classification] {
                    ui.selectable_value(&mut config.task, task, task_label(task));
                }
            })
            .response
            .labelled_by(label.id);
    });
    if config.task != Task::Classification {
        config.class_weights = ClassWeights::None;
    } else {
        config.data.packing = false;
    }
    config.task != before
}

fn task_label(task: Task) -> &'static str {
    match task {
        Task::CausalLm => "Generate text (causal LM)",
        Task::Classification => "Classify text (classification head)",
    }
}

/// The column mapping field; returns the text when applied (Enter or the button).
fn columns_ui(ui: &mut egui::Ui, text: &mut String) -> Option<String> {
    ui.horizontal(|ui| {
        let label = ui.label("Columns");
        let field = ui
            .add(egui::TextEdit::singleline(text).hint_text("prompt=question, completion=answer").desired_width(320.0))
            .labelled_by(label.id);
        let entered = field.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
        let applied = ui.button("Apply mapping").clicked();
        (entered || applied).then(|| text.clone())
    })
    .inner
}

/// A drop-down per column of the file: read it as it is, or as one of the fields the shapes
/// read. Returns true when the mapping changed.
fn column_choices_ui(ui: &mut egui::Ui, file_columns: &[String], columns: &mut BTreeMap<String, String>) -> bool {
    if file_columns.is_empty() {
        return false;
    }
    let mut changed = false;
    ui.horizontal_wrapped(|ui| {
        ui.label("Read each column");
        for column in file_columns {
            let label = ui.label(format!("column `{column}` as"));
            let current = columns.iter().find(|(_, c)| *c == column).map(|(field, _)| field.clone());
            let mut chosen = current.clone();
            egui::ComboBox::from_id_salt(("column", column.as_str()))
                .selected_text(current.as_deref().unwrap_or("itself"))
                .show_ui(ui, |ui| {
                    ui.selectable_value(&mut chosen, None, "itself");
                    for field in crate::data::columns::FIELDS {
                        ui.selectable_value(&mut chosen, Some(field.to_string()), field);
                    }
                })
                .response
                .labelled_by(label.id);
            if chosen != current {
                // A column fills one field, and a field reads one column.
                columns.retain(|field, c| c != column && Some(field) != chosen.as_ref());
                if let Some(field) = chosen {
                    columns.insert(field, column.clone());
                }
                changed = true;
            }
        }
    });
    changed
}

fn preview_ui(ui: &mut egui::Ui, preview: &DatasetPreview, data: &crate::data::DataConfig) {
    let max_seq_len = data.max_seq_len;
    let r = &preview.report;
    egui::Grid::new("dataset-facts").num_columns(2).striped(true).show(ui, |ui| {
        let mut row = |name: &str, value: String| {
            ui.label(name);
            ui.label(value);
            ui.end_row();
        };
        match &preview.classes {
            Some(classes) => row("Classes", classes.join(", ")),
            None => row("Format", r.format.map_or("?".into(), |f| f.name().to_string())),
        }
        row("Columns in the file", r.columns.join(", "));
        if !data.columns.is_empty() {
            let mapped: Vec<String> = data.columns.iter().map(|(field, column)| format!("{field}: {column}")).collect();
            row("Fields read from", mapped.join(", "));
        }
        row("Records", r.records.to_string());
        row("Training examples", r.train_examples.to_string());
        row("Validation examples", r.validation_examples.to_string());
        row("Tokens per example", format!("mean {:.1}, max {}", r.mean_tokens, r.max_tokens));
        row("Trained tokens", format!("{} of {}", r.trainable_tokens, r.train_tokens));
        row(&format!("Truncated to {max_seq_len}"), r.truncated.to_string());
        row("Skipped", r.skipped.len().to_string());
    });
    if !r.skipped.is_empty() {
        ui.collapsing(format!("{} skipped records", r.skipped.len()), |ui| {
            for s in r.skipped.iter().take(50) {
                ui.colored_label(ui.visuals().warn_fg_color, format!("{}: {}", s.origin, s.reason));
            }
        });
    }
    ui.add_space(8.0);
    ui.label(match preview.classes {
        Some(_) => "First examples as the model sees them, with their classes:",
        None => "First examples as the model sees them (highlighted: the tokens it learns to write):",
    });
    for (i, (segments, class)) in preview.examples.iter().enumerate() {
        egui::Frame::group(ui.style()).show(ui, |ui| {
            let title = match class {
                Some(class) => format!("Example {} — {class}", i + 1),
                None => format!("Example {}", i + 1),
            };
            ui.label(egui::RichText::new(title).strong());
            example_ui(ui, segments);
        });
    }
}

fn example_ui(ui: &mut egui::Ui, segments: &[Segment]) {
    let mut job = egui::text::LayoutJob::default();
    let font = egui::TextStyle::Monospace.resolve(ui.style());
    let normal = ui.visuals().weak_text_color();
    let trained = ui.visuals().strong_text_color();
    let highlight = ui.visuals().selection.bg_fill;
    for segment in segments {
        let mut format = egui::TextFormat::simple(font.clone(), if segment.trainable { trained } else { normal });
        if segment.trainable {
            format.background = highlight;
        }
        job.append(&segment.text, 0.0, format);
    }
    ui.label(job);
}
