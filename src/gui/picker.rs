//! Choosing files and folders. The app asks through [`FilePicker`] on a worker thread, so a
//! native dialog never freezes the window, and tests inject a picker that answers at once.

use std::path::PathBuf;

use eframe::egui;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PickKind {
    ModelFolder,
    /// A GGUF model file (llama.cpp, LM Studio, Ollama).
    ModelFile,
    DatasetFile,
    ValidationFile,
    OutputFolder,
    RunFolder,
    SettingsFile,
    SaveSettingsFile,
    MergedExportFolder,
    AdapterExportFolder,
    GgufExportFile,
    GgufAdapterExportFile,
    OllamaExportFolder,
    /// A folder for a TRL or Axolotl recipe.
    RecipeFolder,
}

impl PickKind {
    pub fn title(self) -> &'static str {
        match self {
            PickKind::ModelFolder => "Open model folder",
            PickKind::ModelFile => "Open GGUF model file",
            PickKind::DatasetFile => "Open dataset",
            PickKind::ValidationFile => "Open validation dataset",
            PickKind::OutputFolder => "Run directory",
            PickKind::RunFolder => "Open run directory",
            PickKind::SettingsFile => "Load settings",
            PickKind::SaveSettingsFile => "Save settings",
            PickKind::MergedExportFolder => "Export merged weights to",
            PickKind::AdapterExportFolder => "Export adapter to",
            PickKind::GgufExportFile => "Export GGUF model as",
            PickKind::GgufAdapterExportFile => "Export GGUF adapter as",
            PickKind::OllamaExportFolder => "Export for Ollama to",
            PickKind::RecipeFolder => "Write the cluster recipe to",
        }
    }
}

impl PickKind {
    /// Whether the pick names something the app writes (a run, an export, settings).
    pub fn is_output(self) -> bool {
        matches!(
            self,
            PickKind::OutputFolder
                | PickKind::SaveSettingsFile
                | PickKind::MergedExportFolder
                | PickKind::AdapterExportFolder
                | PickKind::GgufExportFile
                | PickKind::GgufAdapterExportFile
                | PickKind::OllamaExportFolder
                | PickKind::RecipeFolder
        )
    }
}

pub trait FilePicker: Send + Sync {
    fn pick(&self, kind: PickKind) -> Option<PathBuf>;
}

/// Native dialogs through rfd (the XDG portal or zenity on Linux).
pub struct DialogPicker;

impl FilePicker for DialogPicker {
    fn pick(&self, kind: PickKind) -> Option<PathBuf> {
        let mut dialog = rfd::FileDialog::new().set_title(kind.title());
        // What the app writes starts in its workspace (where it exists), not the launcher's folder.
        let workspace = super::settings::workspace();
        if kind.is_output() && workspace.is_dir() {
            dialog = dialog.set_directory(workspace);
        }
        match kind {
            PickKind::DatasetFile | PickKind::ValidationFile => {
                dialog.add_filter("Datasets", &["jsonl", "json", "csv", "ndjson", "parquet"]).pick_file()
            }
            PickKind::ModelFile => dialog.add_filter("GGUF models", &["gguf"]).pick_file(),
            PickKind::SettingsFile => dialog.add_filter("TOML", &["toml"]).pick_file(),
            PickKind::SaveSettingsFile => dialog.set_file_name("run.toml").add_filter("TOML", &["toml"]).save_file(),
            PickKind::GgufExportFile => dialog.set_file_name("model.gguf").add_filter("GGUF", &["gguf"]).save_file(),
            PickKind::GgufAdapterExportFile => dialog.set_file_name("adapter.gguf").add_filter("GGUF", &["gguf"]).save_file(),
            PickKind::ModelFolder
            | PickKind::OutputFolder
            | PickKind::RunFolder
            | PickKind::MergedExportFolder
            | PickKind::AdapterExportFolder
            | PickKind::OllamaExportFolder
            | PickKind::RecipeFolder => dialog.pick_folder(),
        }
    }
}

/// A path typed or pasted: the way in where no native dialog can open (rfd needs an XDG portal
/// or zenity on Linux) and the quick way for a path already on the clipboard. Returns the path
/// when Enter or the button (`open_label`) is pressed, with a leading `~` expanded.
pub fn typed_path_ui(ui: &mut egui::Ui, label: &str, open_label: &str, text: &mut String) -> Option<PathBuf> {
    typed_path_row(ui, label, open_label, text).0
}

/// [`typed_path_ui`], also returning the text field.
fn typed_path_row(ui: &mut egui::Ui, label: &str, open_label: &str, text: &mut String) -> (Option<PathBuf>, egui::Response) {
    let (open, field) = ui
        .horizontal(|ui| {
            let label = ui.label(label);
            let field = ui.add(egui::TextEdit::singleline(text).desired_width(420.0)).labelled_by(label.id);
            let entered = field.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
            let clicked = ui.add_enabled(!text.trim().is_empty(), egui::Button::new(open_label)).clicked();
            (clicked || entered, field)
        })
        .inner;
    let typed = text.trim();
    if !open || typed.is_empty() {
        return (None, field);
    }
    let path = match (typed.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => PathBuf::from(typed),
    };
    (Some(path), field)
}

/// The typed path that stands in for a dialog that could not open.
pub struct PathPrompt {
    kind: PickKind,
    text: String,
    focused: bool,
}

impl PathPrompt {
    pub fn new(kind: PickKind) -> Self {
        Self { kind, text: String::new(), focused: false }
    }
}

pub enum PromptOutcome {
    Open(PickKind, PathBuf),
    Cancel,
    Pending,
}

pub fn path_prompt_ui(ctx: &egui::Context, prompt: &mut PathPrompt) -> PromptOutcome {
    let mut outcome = PromptOutcome::Pending;
    let modal = egui::Modal::new(egui::Id::unique("path-prompt")).show(ctx, |ui| {
        ui.heading(prompt.kind.title());
        ui.label("No file dialog can open on this system (it needs an XDG desktop portal or zenity). Type the path instead.");
        let (path, field) = typed_path_row(ui, "Path", "OK", &mut prompt.text);
        if !prompt.focused {
            field.request_focus();
            prompt.focused = true;
        }
        if let Some(path) = path {
            outcome = PromptOutcome::Open(prompt.kind, path);
        }
        if ui.button("Cancel").clicked() {
            outcome = PromptOutcome::Cancel;
        }
    });
    if modal.should_close() && matches!(outcome, PromptOutcome::Pending) {
        outcome = PromptOutcome::Cancel;
    }
    outcome
}
