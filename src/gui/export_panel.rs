//! The export panel: merged weights as a Hugging Face folder (dtype of choice), the PEFT adapter,
//! for llama.cpp and Ollama a GGUF model, a GGUF adapter or an Ollama folder, and a recipe that
//! runs the same training on a GPU cluster (TRL or Axolotl).

use std::path::PathBuf;

use crate::gguf::GgmlType;
use crate::model::WeightDtype;
use eframe::egui;

use super::app::WgtuneApp;
use super::jobs::{ExportKind, ExportTarget};
use super::model_panel::{display_path, error_ui};
use super::picker::PickKind;
use crate::recipe::RecipeTarget;

pub struct ExportPanel {
    /// `None` keeps the source model's dtype.
    pub dtype: Option<WeightDtype>,
    /// The GGUF weight matrices' type.
    pub gguf_type: GgmlType,
    pub busy: bool,
    pub kind: ExportKind,
    pub progress: Option<(usize, usize)>,
    pub result: Option<Result<PathBuf, String>>,
    /// A chosen folder that holds files: replaced only once the user says so.
    pub confirm_replace: Option<ExportTarget>,
    /// The cluster trainer a recipe is written for, and the processes (GPUs) it splits the batch over.
    pub recipe_target: RecipeTarget,
    pub world_size: usize,
}

impl Default for ExportPanel {
    fn default() -> Self {
        Self {
            dtype: None,
            gguf_type: GgmlType::Q8_0,
            busy: false,
            kind: ExportKind::Merged,
            progress: None,
            result: None,
            confirm_replace: None,
            recipe_target: RecipeTarget::Trl,
            world_size: 8,
        }
    }
}

impl ExportPanel {
    pub fn begin(&mut self, kind: ExportKind) {
        self.busy = true;
        self.kind = kind;
        self.progress = None;
        self.result = None;
    }

    pub fn finished(&mut self, result: Result<PathBuf, String>) {
        self.busy = false;
        self.result = Some(result);
    }
}

impl WgtuneApp {
    pub fn export_ui(&mut self, ui: &mut egui::Ui) {
        ui.heading("Export");
        let trained = self.trained_weights();
        match &trained {
            Some(path) => ui.label(format!("Trained weights: {}", display_path(path))),
            None => ui.label("Nothing to export yet: train, or resume a run, first."),
        };
        let is_lora = self.settings.config.method.lora().is_some();
        let ready = trained.is_some() && !self.export.busy && !self.training.is_running();
        egui::Frame::group(ui.style()).show(ui, |ui| {
            ui.label(egui::RichText::new("Merged weights").strong());
            ui.label("A Hugging Face folder with the base model's tensor names, shapes and shards; transformers loads it as is.");
            ui.horizontal(|ui| {
                let dtype_label = ui.label("dtype");
                let label = self.export.dtype.map_or("same as the model".to_string(), |d| d.torch_name().to_string());
                egui::ComboBox::from_id_salt("export-dtype")
                    .selected_text(label)
                    .show_ui(ui, |ui| {
                        ui.selectable_value(&mut self.export.dtype, None, "same as the model");
                        for d in [WeightDtype::F32, WeightDtype::F16, WeightDtype::Bf16] {
                            ui.selectable_value(&mut self.export.dtype, Some(d), d.torch_name());
                        }
                    })
                    .response
                    .labelled_by(dtype_label.id);
                if ui.add_enabled(ready, egui::Button::new("Export merged weights…")).clicked() {
                    self.jobs.pick(PickKind::MergedExportFolder);
                }
            });
        });
        egui::Frame::group(ui.style()).show(ui, |ui| {
            ui.label(egui::RichText::new("LoRA adapter").strong());
            ui.label("adapter_config.json + adapter_model.safetensors, loadable with PEFT's PeftModel.from_pretrained.");
            if ui.add_enabled(ready && is_lora, egui::Button::new("Export adapter…")).clicked() {
                self.jobs.pick(PickKind::AdapterExportFolder);
            }
        });
        egui::Frame::group(ui.style()).show(ui, |ui| {
            ui.label(egui::RichText::new("llama.cpp, LM Studio and Ollama").strong());
            ui.label(
                "Merged weights as one GGUF file, the adapter as llama.cpp's LoRA GGUF, or a folder for `ollama create NAME -f Modelfile`.",
            );
            ui.horizontal(|ui| {
                let type_label = ui.label("GGUF type");
                egui::ComboBox::from_id_salt("gguf-type")
                    .selected_text(self.export.gguf_type.name())
                    .show_ui(ui, |ui| {
                        for (_, t) in crate::gguf::EXPORT_TYPES {
                            ui.selectable_value(&mut self.export.gguf_type, t, t.name());
                        }
                    })
                    .response
                    .labelled_by(type_label.id);
                if ui.add_enabled(ready, egui::Button::new("Export GGUF…")).clicked() {
                    self.jobs.pick(PickKind::GgufExportFile);
                }
                if ui.add_enabled(ready && is_lora, egui::Button::new("Export adapter GGUF…")).clicked() {
                    self.jobs.pick(PickKind::GgufAdapterExportFile);
                }
                if ui.add_enabled(ready, egui::Button::new("Export for Ollama…")).clicked() {
                    self.jobs.pick(PickKind::OllamaExportFolder);
                }
            });
        });
        self.recipe_ui(ui);
        if self.export.busy {
            let (done, total) = self.export.progress.unwrap_or((0, 1));
            ui.add(egui::ProgressBar::new(done as f32 / total.max(1) as f32).text(format!("{done} / {total} tensors")));
        }
        self.confirm_replace_ui(ui);
        match &self.export.result {
            Some(Ok(path)) => {
                ui.colored_label(
                    egui::Color32::from_rgb(60, 170, 90),
                    format!("Exported {} to {}", self.export.kind.description(), display_path(path)),
                );
            }
            Some(Err(error)) => error_ui(ui, error),
            None => {}
        }
    }
}

impl WgtuneApp {
    /// "Run on a cluster": the run's records, split and settings as a TRL or Axolotl recipe.
    fn recipe_ui(&mut self, ui: &mut egui::Ui) {
        let ready = !self.export.busy && !self.settings.config.data.train_file.as_os_str().is_empty();
        egui::Frame::group(ui.style()).show(ui, |ui| {
            ui.label(egui::RichText::new("Run on a cluster").strong());
            ui.label(
                "The same model, records, validation split and settings as a recipe for TRL (torchrun) or Axolotl on GPUs you rent: \
                 records, config, launch.sh for one or several nodes, and a README. What it trains comes back as a run here.",
            );
            ui.horizontal(|ui| {
                let target_label = ui.label("Trainer");
                egui::ComboBox::from_id_salt("recipe-target")
                    .selected_text(self.export.recipe_target.name())
                    .show_ui(ui, |ui| {
                        for target in [RecipeTarget::Trl, RecipeTarget::Axolotl] {
                            ui.selectable_value(&mut self.export.recipe_target, target, target.name());
                        }
                    })
                    .response
                    .labelled_by(target_label.id);
                let gpus = ui.label("GPUs");
                ui.add(egui::DragValue::new(&mut self.export.world_size).range(1..=1024)).labelled_by(gpus.id);
                if ui.add_enabled(ready, egui::Button::new("Write recipe…")).clicked() {
                    self.jobs.pick(PickKind::RecipeFolder);
                }
            });
        });
    }

    /// Asks before an export replaces a folder that holds files.
    fn confirm_replace_ui(&mut self, ui: &mut egui::Ui) {
        let Some(target) = self.export.confirm_replace.clone() else { return };
        let modal = egui::Modal::new(egui::Id::unique("confirm-replace-export")).show(ui.ctx(), |ui| {
            ui.heading("Replace this folder?");
            ui.label(format!(
                "{} already holds files. Exporting there deletes them and writes the export in their place.",
                display_path(&target.path)
            ));
            ui.horizontal(|ui| {
                if ui.button("Replace it").clicked() {
                    self.export.confirm_replace = None;
                    self.start_export(ExportTarget { overwrite: true, ..target.clone() });
                }
                if ui.button("Cancel").clicked() {
                    self.export.confirm_replace = None;
                }
            });
        });
        if modal.should_close() {
            self.export.confirm_replace = None;
        }
    }
}
