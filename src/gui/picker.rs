//! Choosing files and folders. The app asks through [`FilePicker`] on a worker thread, so a
//! native dialog never freezes the window, and tests inject a picker that answers at once.

use std::path::PathBuf;

use eframe::egui;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PickKind {
    ModelFolder,
    DatasetFile,
    ValidationFile,
    OutputFolder,
    RunFolder,
    SettingsFile,
    SaveSettingsFile,
    MergedExportFolder,
    AdapterExportFolder,
}

pub trait FilePicker: Send + Sync {
    fn pick(&self, kind: PickKind) -> Option<PathBuf>;
}

/// Native dialogs through rfd (the XDG portal or zenity on Linux).
pub struct DialogPicker;

impl FilePicker for DialogPicker {
    fn pick(&self, kind: PickKind) -> Option<PathBuf> {
        let dialog = rfd::FileDialog::new();
        match kind {
            PickKind::ModelFolder => dialog.set_title("Open model folder").pick_folder(),
            PickKind::DatasetFile | PickKind::ValidationFile => dialog
                .set_title("Open dataset")
                .add_filter("Datasets", &["jsonl", "json", "csv", "ndjson"])
                .pick_file(),
            PickKind::OutputFolder => dialog.set_title("Run directory").pick_folder(),
            PickKind::RunFolder => dialog.set_title("Open run directory").pick_folder(),
            PickKind::SettingsFile => dialog.set_title("Load settings").add_filter("TOML", &["toml"]).pick_file(),
            PickKind::SaveSettingsFile => dialog
                .set_title("Save settings")
                .set_file_name("run.toml")
                .add_filter("TOML", &["toml"])
                .save_file(),
            PickKind::MergedExportFolder => dialog.set_title("Export merged weights to").pick_folder(),
            PickKind::AdapterExportFolder => dialog.set_title("Export adapter to").pick_folder(),
        }
    }
}

/// A path typed or pasted: the way in where no native dialog can open (rfd needs an XDG portal
/// or zenity on Linux) and the quick way for a path already on the clipboard. Returns the path
/// when Enter or the button is pressed, with a leading `~` expanded.
pub fn typed_path_ui(ui: &mut egui::Ui, label: &str, text: &mut String) -> Option<PathBuf> {
    let mut open = false;
    ui.horizontal(|ui| {
        let label = ui.label(label);
        let edit = ui.add(egui::TextEdit::singleline(text).desired_width(420.0)).labelled_by(label.id);
        let entered = edit.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
        open = ui.add_enabled(!text.trim().is_empty(), egui::Button::new("Open path")).clicked() || entered;
    });
    let typed = text.trim();
    if !open || typed.is_empty() {
        return None;
    }
    Some(match (typed.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => PathBuf::from(typed),
    })
}
