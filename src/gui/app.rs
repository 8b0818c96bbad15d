//! The app's state and frame loop: tabs for each panel, a status bar, and the plumbing that
//! turns job replies and training events into UI state.

use std::path::PathBuf;
use std::sync::Arc;

use crate::hub::{CachedModel, cached_models};
use crate::model::BaseQuant;
use crate::train::{RunStart, TrainCommand, TrainEvent, output_dir_in_use};
use eframe::egui;

use super::dataset_panel::DatasetPanel;
use super::evaluate_panel::EvaluatePanel;
use super::export_panel::ExportPanel;
use super::jobs::{ExportKind, ExportTarget, Jobs, ModelSummary, Reply};
use super::model_panel::ModelPanel;
use super::picker::{FilePicker, PathPrompt, PickKind, PromptOutcome, path_prompt_ui};
use super::playground::Playground;
use super::playground_panel::PlaygroundPanel;
use super::runs_panel::RunsPanel;
use super::settings::{STORAGE_KEY, Settings, in_workspace};
use super::training_panel::TrainingPanel;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tab {
    Model,
    Dataset,
    Hyperparameters,
    Training,
    Playground,
    Evaluate,
    Export,
    Runs,
}

impl Tab {
    const ALL: [Tab; 8] =
        [Tab::Model, Tab::Dataset, Tab::Hyperparameters, Tab::Training, Tab::Playground, Tab::Evaluate, Tab::Export, Tab::Runs];

    fn label(self) -> &'static str {
        match self {
            Tab::Model => "Model",
            Tab::Dataset => "Dataset",
            Tab::Hyperparameters => "Hyperparameters",
            Tab::Training => "Training",
            Tab::Playground => "Playground",
            Tab::Evaluate => "Evaluate",
            Tab::Export => "Export",
            Tab::Runs => "Runs",
        }
    }
}

pub struct WgtuneApp {
    pub settings: Settings,
    pub tab: Tab,
    pub jobs: Jobs,
    pub playground_worker: Playground,
    pub model: ModelPanel,
    pub dataset: DatasetPanel,
    pub training: TrainingPanel,
    pub playground: PlaygroundPanel,
    pub evaluate: EvaluatePanel,
    pub export: ExportPanel,
    pub runs: RunsPanel,
    /// A run reopened from the Runs tab: its weights are the trained ones until a run starts.
    pub opened_run: Option<PathBuf>,
    pub cached_models: Vec<CachedModel>,
    pub device_description: String,
    /// Whether training runs through wgpu (and its fused kernels), for the memory estimate.
    pub device_on_wgpu: bool,
    /// The wgpu adapter's limits (none on the CPU), for the status bar.
    pub device_adapter: Option<crate::device::AdapterLimits>,
    /// The most memory a run can have on the device, for the first screen's account of it.
    pub device_memory: Option<u64>,
    /// A pick that no file dialog could answer, asked for as a typed path instead.
    pub path_prompt: Option<PathPrompt>,
    /// Set when the window was asked to close while training runs.
    confirm_close: bool,
    /// Set once the user chose to stop and quit: close when the run has saved and ended.
    closing: bool,
}

impl WgtuneApp {
    pub fn new(cc: &eframe::CreationContext<'_>, picker: Box<dyn FilePicker>) -> Self {
        let mut settings: Settings = cc.storage.and_then(|s| eframe::get_value(s, STORAGE_KEY)).unwrap_or_default();
        // `runs/latest` by default, and relative in settings saved by earlier versions.
        settings.config.output_dir = in_workspace(std::mem::take(&mut settings.config.output_dir));
        let ctx = cc.egui_ctx.clone();
        let jobs = Jobs::new(Arc::from(picker), Arc::new(move || ctx.request_repaint()));
        let playground_worker = Playground::new(jobs.sender());
        let mut app = Self {
            settings,
            tab: Tab::Model,
            playground_worker,
            model: ModelPanel::default(),
            dataset: DatasetPanel::default(),
            training: TrainingPanel::default(),
            playground: PlaygroundPanel::default(),
            evaluate: EvaluatePanel::default(),
            export: ExportPanel::default(),
            runs: RunsPanel::default(),
            opened_run: None,
            cached_models: cached_models(),
            device_description: "detecting the GPU…".into(),
            device_on_wgpu: false,
            device_adapter: None,
            device_memory: None,
            path_prompt: None,
            confirm_close: false,
            closing: false,
            jobs,
        };
        app.jobs.describe_device(app.settings.config.device);
        if !app.settings.config.model.as_os_str().is_empty() {
            app.select_model(app.settings.config.model.clone());
        }
        app
    }

    /// The bundled demo model and datasets, written out on first use (the error is the app's
    /// to show where that cannot be done).
    pub fn bundled() -> Result<crate::bundled::Bundled, String> {
        crate::bundled::bundled().map_err(|e| format!("Cannot write out the bundled demo: {e}"))
    }

    /// A bundled demo dataset as the training and validation files, at the starting point sized
    /// for it once it is read: the defaults would stop the demo after a handful of steps.
    pub fn use_demo_data(&mut self, demo: crate::bundled::DemoData) {
        self.settings.config.data.train_file = demo.train;
        self.settings.config.data.validation_file = Some(demo.validation);
        self.dataset.preset_on_preview = Some(crate::presets::Preset::Balanced);
    }

    pub fn select_model(&mut self, path: PathBuf) {
        self.model.loading = true;
        self.model.error = None;
        self.jobs.read_model(path);
    }

    pub fn select_dataset(&mut self, path: PathBuf) {
        self.settings.config.data.train_file = path;
        self.refresh_dataset();
    }

    pub fn select_validation(&mut self, path: PathBuf) {
        self.settings.config.data.validation_file = Some(path);
        self.refresh_dataset();
    }

    pub fn refresh_dataset(&mut self) {
        let data = &self.settings.config.data;
        if data.train_file.as_os_str().is_empty() {
            return;
        }
        match &self.model.summary {
            Some(model) => {
                self.dataset.loading = true;
                self.dataset.error = None;
                self.jobs.read_dataset(model.path.clone(), data.clone(), self.settings.config.task, self.settings.config.seed);
            }
            None => self.dataset.error = Some("Choose a model first: the dataset is tokenized with its tokenizer.".into()),
        }
    }

    fn handle_reply(&mut self, reply: Reply) {
        match reply {
            Reply::Device { description, on_wgpu, adapter, memory } => {
                self.device_description = description;
                self.device_on_wgpu = on_wgpu;
                self.device_adapter = adapter;
                self.device_memory = memory;
            }
            Reply::Picked(kind, Some(path), _) => self.picked(kind, path),
            // Nobody cancels a dialog this fast: none could open (rfd found no XDG portal or zenity).
            Reply::Picked(kind, None, open) if open < std::time::Duration::from_millis(300) => {
                self.path_prompt = Some(PathPrompt::new(kind));
            }
            Reply::Picked(_, None, _) => {}
            Reply::Download(progress) => self.model.download = Some(progress),
            Reply::Searched(found) => self.model.search_results = Some(found),
            Reply::Model(result) => {
                self.model.loading = false;
                self.model.download = None;
                match result {
                    Ok(summary) => self.model_loaded(summary),
                    Err(e) => self.model.error = Some(e),
                }
            }
            Reply::DatasetDownload(progress) => self.dataset.download = Some(progress),
            Reply::Dataset(result, columns, read) => {
                self.dataset.loading = false;
                self.dataset.download = None;
                self.dataset.file_columns = columns;
                // A dataset id now names the split's Parquet file in the cache.
                let data = &mut self.settings.config.data;
                if data.train_file != read.train_file && crate::hub::is_hub_id(&data.train_file.to_string_lossy()) {
                    data.train_file = read.train_file;
                }
                if let (Some(ours), Some(read)) = (&data.validation_file, read.validation_file)
                    && *ours != read
                    && crate::hub::is_hub_id(&ours.to_string_lossy())
                {
                    data.validation_file = Some(read);
                }
                match result {
                    Ok(preview) => {
                        if let (Some(preset), Some(model)) = (self.dataset.preset_on_preview.take(), &self.model.summary) {
                            preset.apply(&mut self.settings.config, model.parameters, preview.report.train_examples);
                        }
                        self.settings.remember_dataset(self.settings.config.data.train_file.clone());
                        self.dataset.preview = Some(preview);
                        self.dataset.error = None;
                    }
                    Err(e) => {
                        self.dataset.preview = None;
                        self.dataset.preset_on_preview = None;
                        self.dataset.error = Some(e);
                    }
                }
            }
            Reply::Streaming { slot, text } => self.playground.streaming(slot, text),
            Reply::Generated { slot, result } => self.playground.finished(slot, result),
            Reply::ExportProgress { done, total } => self.export.progress = Some((done, total)),
            Reply::Exported(result) => self.export.finished(result),
            Reply::EvalProgress { model, done, total } => self.evaluate.progress = Some((model, done, total)),
            Reply::Evaluated(result) => self.evaluate.finished(result),
            Reply::Runs(runs) => self.runs_listed(runs),
        }
    }

    fn model_loaded(&mut self, summary: ModelSummary) {
        if self.settings.config.model != summary.path {
            self.default_frozen_base(&summary);
        }
        self.settings.config.model = summary.path.clone();
        self.settings.remember_model(summary.path.clone());
        self.model.summary = Some(summary);
        self.model.error = None;
        self.name_run();
        self.refresh_dataset();
    }

    /// Names the next run's directory after its model, method and the time, in the workspace's
    /// `runs/`, unless the user chose the directory (typed it or picked it).
    fn name_run(&mut self) {
        let current = in_workspace(self.settings.config.output_dir.clone());
        let named_by_app = self.settings.named_run_dir.as_ref() == Some(&current)
            || current == in_workspace(crate::train::TrainConfig::default().output_dir);
        if !named_by_app {
            return;
        }
        let c = &self.settings.config;
        let name = crate::train::run_name(&c.model, c.method.name(), std::time::SystemTime::now());
        let dir = crate::train::unused_run_dir(&in_workspace("runs".into()), &name);
        self.settings.config.output_dir = dir.clone();
        self.settings.named_run_dir = Some(dir);
    }

    /// A newly chosen quantized GGUF trains LoRA over its own blocks (int4 or int8), as `wgtune
    /// train` does, rather than over its weights widened to f32; a base packed that way goes back
    /// to dense for a model that has no blocks. The Hyperparameters tab still chooses freely.
    fn default_frozen_base(&mut self, summary: &ModelSummary) {
        let config = &mut self.settings.config;
        if config.method.lora().is_none() {
            return;
        }
        if summary.native_base_quant != BaseQuant::None {
            config.base_quant = summary.native_base_quant;
            self.model.frozen_base_note = Some(format!(
                "{}, as the file stores its weights ({}); choose dense in Hyperparameters to train over f32 weights",
                summary.native_base_quant, summary.storage
            ));
        } else if self.model.frozen_base_note.take().is_some() {
            config.base_quant = BaseQuant::None;
        }
    }

    fn picked(&mut self, kind: PickKind, path: PathBuf) {
        let path = if kind.is_output() { in_workspace(path) } else { path };
        match kind {
            PickKind::ModelFolder | PickKind::ModelFile => self.select_model(path),
            PickKind::DatasetFile => self.select_dataset(path),
            PickKind::ValidationFile => self.select_validation(path),
            PickKind::OutputFolder => self.settings.config.output_dir = path,
            PickKind::RunFolder => self.resume_run(path),
            PickKind::SettingsFile => match crate::train::TrainConfig::from_toml_file(&path) {
                Ok(config) => {
                    let model = config.model.clone();
                    self.settings.config = config;
                    self.hyperparameters_message(format!("Loaded {}", path.display()));
                    self.select_model(model);
                }
                Err(e) => self.hyperparameters_message(e.to_string()),
            },
            PickKind::SaveSettingsFile => {
                let message = match self.settings.config.save_toml(&path) {
                    Ok(()) => format!("Saved {}", path.display()),
                    Err(e) => e.to_string(),
                };
                self.hyperparameters_message(message);
            }
            PickKind::MergedExportFolder => self.start_export(ExportTarget { path, kind: ExportKind::Merged, overwrite: false }),
            PickKind::AdapterExportFolder => self.start_export(ExportTarget { path, kind: ExportKind::Adapter, overwrite: false }),
            PickKind::GgufExportFile => self.start_export(ExportTarget { path, kind: ExportKind::Gguf, overwrite: false }),
            PickKind::GgufAdapterExportFile => self.start_export(ExportTarget { path, kind: ExportKind::GgufAdapter, overwrite: false }),
            PickKind::OllamaExportFolder => self.start_export(ExportTarget { path, kind: ExportKind::Ollama, overwrite: false }),
            PickKind::RecipeFolder => {
                let kind = ExportKind::Recipe(self.export.recipe_target);
                self.start_export(ExportTarget { path, kind, overwrite: false })
            }
        }
    }

    fn hyperparameters_message(&mut self, message: String) {
        self.training.settings_message = Some(message);
    }

    /// Starts a new run; when its output folder already holds one, asks first (replace it,
    /// resume it, or cancel) unless `start` says which.
    pub fn start_training(&mut self, start: RunStart) {
        if start == RunStart::New {
            // A run named by the app starts under a name of its own time, so that it never asks
            // to replace the run before it.
            self.name_run();
        }
        let run_dir = in_workspace(self.settings.config.output_dir.clone());
        self.settings.config.output_dir = run_dir;
        let config = self.settings.config.clone();
        if let Err(e) = config.validate() {
            self.training.start_error = Some(e.to_string());
            return;
        }
        if start == RunStart::New && output_dir_in_use(&config.output_dir) {
            self.training.confirm_overwrite = true;
            return;
        }
        self.settings.last_run = Some(config.output_dir.clone());
        self.opened_run = None;
        self.training.start(crate::train::spawn(config, start));
        self.tab = Tab::Training;
    }

    pub fn resume_run(&mut self, run_dir: PathBuf) {
        match crate::train::resume_config(&run_dir) {
            Ok(config) => {
                self.settings.config = config.clone();
                self.settings.last_run = Some(run_dir);
                self.opened_run = None;
                self.training.start(crate::train::spawn(config, RunStart::Resume));
                self.tab = Tab::Training;
            }
            Err(e) => self.training.start_error = Some(e.to_string()),
        }
    }

    /// Exports to `target`, first asking whether to replace it when it holds files.
    pub fn start_export(&mut self, mut target: ExportTarget) {
        target.path = in_workspace(target.path);
        if let ExportKind::Recipe(recipe) = target.kind {
            if !target.overwrite && crate::fsutil::is_non_empty_dir(&target.path) {
                self.export.confirm_replace = Some(target);
                return;
            }
            self.export.begin(target.kind);
            self.jobs.write_recipe(self.recipe_settings(), recipe, self.export.world_size, target);
            return;
        }
        let Some(trained) = self.trained_weights() else {
            self.export.finished(Err("Train first, or resume a run: there are no trained weights to export.".into()));
            return;
        };
        let in_use = if target.kind.is_file() { target.path.is_file() } else { crate::fsutil::is_non_empty_dir(&target.path) };
        if !target.overwrite && in_use {
            self.export.confirm_replace = Some(target);
            return;
        }
        self.export.begin(target.kind);
        self.jobs.export(self.settings.config.model.clone(), trained, target, self.export.dtype, self.export.gguf_type);
    }

    /// The settings a recipe carries: the opened (or last) run's own, else those on screen.
    fn recipe_settings(&self) -> crate::train::TrainConfig {
        let run = self.opened_run.clone().or_else(|| self.training.run_dir()).or(self.settings.last_run.clone());
        run.and_then(|dir| crate::train::resume_config(&dir).ok()).unwrap_or_else(|| self.settings.config.clone())
    }

    /// The trained weights of the current (or last) run, if it has produced any.
    pub fn trained_weights(&self) -> Option<PathBuf> {
        if self.opened_run.is_none()
            && let Some(summary) = &self.training.summary
        {
            return Some(summary.final_checkpoint.clone());
        }
        let run = self.opened_run.clone().or_else(|| self.training.run_dir()).or(self.settings.last_run.clone())?;
        crate::train::run_weights(&run)
    }

    fn drain(&mut self) {
        for reply in self.jobs.poll() {
            self.handle_reply(reply);
        }
        let events = self.training.poll();
        for event in events {
            if let TrainEvent::Generated { reply, .. } = &event {
                self.playground.finished(super::playground::Slot::Tuned, reply.clone());
            }
            self.training.apply(event);
        }
    }

    fn close_guard(&mut self, ctx: &egui::Context) {
        if ctx.input(|i| i.viewport().close_requested()) && self.training.is_running() && !self.closing {
            ctx.send_viewport_cmd(egui::ViewportCommand::CancelClose);
            self.confirm_close = true;
        }
        if self.closing && !self.training.is_running() {
            ctx.send_viewport_cmd(egui::ViewportCommand::Close);
        }
    }

    fn confirm_close_ui(&mut self, ctx: &egui::Context) {
        if !self.confirm_close {
            return;
        }
        let modal = egui::Modal::new(egui::Id::unique("confirm-close")).show(ctx, |ui| {
            ui.heading("Training is running");
            ui.label("Stop it and quit? A checkpoint is written first, so the run can be resumed later.");
            ui.horizontal(|ui| {
                if ui.button("Stop and quit").clicked() {
                    self.training.send(TrainCommand::Stop);
                    self.closing = true;
                    self.confirm_close = false;
                }
                if ui.button("Keep training").clicked() {
                    self.confirm_close = false;
                }
            });
        });
        if modal.should_close() {
            self.confirm_close = false;
        }
    }

    fn status_bar_ui(&self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            let device = ui.label(format!("Device: {}", self.device_description));
            if let Some(adapter) = &self.device_adapter {
                self.kernels_ui(ui, device, adapter);
            }
            ui.separator();
            ui.label(self.training.status_line());
        });
    }

    /// The adapter's limits and the kernel each operation takes there (for the chosen model's
    /// heads), behind a short verdict beside the device's name.
    fn kernels_ui(&self, ui: &mut egui::Ui, device: egui::Response, adapter: &crate::device::AdapterLimits) {
        let short = crate::kernels::shortfalls(adapter);
        let verdict = if short.is_empty() { "WGSL kernels" } else { "Burn's operations (adapter short of the kernels' needs)" };
        let head_dim = self.model.summary.as_ref().map_or(64, |s| s.config.head_dim);
        let mut details = format!(
            "{} invocations per workgroup, {} KiB of workgroup memory, {} storage buffers per stage, bindings up to {}; shader-f16 {}",
            adapter.invocations_per_workgroup,
            adapter.workgroup_storage_bytes / 1024,
            adapter.storage_buffers_per_stage,
            crate::inspect::human_bytes(adapter.storage_binding_bytes),
            if adapter.shader_f16 { "yes" } else { "no" },
        );
        if !short.is_empty() {
            details.push_str(&format!("\nshort of the kernels' needs: {}", short.join(", ")));
        }
        for (operation, kernel) in crate::kernels::describe_kernels(adapter, head_dim) {
            details.push_str(&format!("\n{operation}: {kernel}"));
        }
        device.on_hover_text(&details);
        ui.label(format!("· {verdict}")).on_hover_text(details);
    }

    fn tabs_ui(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            ui.heading("wgtune").on_hover_text(format!("wgtune {}", crate::VERSION));
            ui.separator();
            for tab in Tab::ALL {
                if ui.selectable_value(&mut self.tab, tab, tab.label()).clicked() && tab == Tab::Runs {
                    self.refresh_runs();
                }
            }
        });
    }
}

impl eframe::App for WgtuneApp {
    fn logic(&mut self, ctx: &egui::Context, _frame: &mut eframe::Frame) {
        self.drain();
        self.close_guard(ctx);
        if self.training.is_running() || self.export.busy || self.model.loading || self.dataset.loading {
            ctx.request_repaint_after(std::time::Duration::from_millis(200));
        }
    }

    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        egui::Panel::top("tabs").show(ui, |ui| self.tabs_ui(ui));
        egui::Panel::bottom("status").show(ui, |ui| self.status_bar_ui(ui));
        egui::CentralPanel::default().show(ui, |ui| {
            egui::ScrollArea::vertical().auto_shrink([false, false]).show(ui, |ui| match self.tab {
                Tab::Model => self.model_ui(ui),
                Tab::Dataset => self.dataset_ui(ui),
                Tab::Hyperparameters => self.hyperparameters_ui(ui),
                Tab::Training => self.training_ui(ui),
                Tab::Playground => self.playground_ui(ui),
                Tab::Evaluate => self.evaluate_ui(ui),
                Tab::Runs => self.runs_ui(ui),
                Tab::Export => self.export_ui(ui),
            });
        });
        let ctx = ui.ctx().clone();
        if let Some(prompt) = &mut self.path_prompt {
            match path_prompt_ui(&ctx, prompt) {
                PromptOutcome::Open(kind, path) => {
                    self.path_prompt = None;
                    self.picked(kind, path);
                }
                PromptOutcome::Cancel => self.path_prompt = None,
                PromptOutcome::Pending => {}
            }
        }
        self.confirm_close_ui(&ctx);
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        eframe::set_value(storage, STORAGE_KEY, &self.settings);
    }
}

impl Drop for WgtuneApp {
    fn drop(&mut self) {
        // Leaving the app stops a run; the trainer writes a checkpoint before it ends.
        self.training.send(TrainCommand::Stop);
    }
}
