//! Choosing files and folders. The app asks through [`FilePicker`] on a worker thread, so a
//! native dialog never freezes the window, and tests inject a picker that answers at once.

use std::path::PathBuf;

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
