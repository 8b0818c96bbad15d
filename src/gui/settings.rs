//! What the app remembers between launches (eframe storage).

use std::path::PathBuf;

use crate::generate::GenerationSettings;
use crate::train::TrainConfig;
use serde::{Deserialize, Serialize};

pub const STORAGE_KEY: &str = "wgtune-settings";
const RECENT: usize = 8;

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// The run being prepared; the same settings `run.toml` holds.
    pub config: TrainConfig,
    pub generation: GenerationSettings,
    pub recent_models: Vec<PathBuf>,
    pub recent_datasets: Vec<PathBuf>,
    pub last_run: Option<PathBuf>,
    /// The run directory the app named (after model, method and time) and the user has not
    /// changed since: a new run gets a fresh name instead of replacing the last one.
    pub named_run_dir: Option<PathBuf>,
}

impl Settings {
    pub fn remember_model(&mut self, path: PathBuf) {
        remember(&mut self.recent_models, path);
    }

    pub fn remember_dataset(&mut self, path: PathBuf) {
        remember(&mut self.recent_datasets, path);
    }
}

/// Where the app's runs and exports go unless the user picks another folder: `$WGTUNE_HOME`, or
/// `wgtune` in the home folder. Never the current folder, which for an app started from a
/// desktop menu is wherever the launcher happened to be.
pub fn workspace() -> PathBuf {
    workspace_from(std::env::var_os("WGTUNE_HOME"), dirs::home_dir())
}

fn workspace_from(wgtune_home: Option<std::ffi::OsString>, home: Option<PathBuf>) -> PathBuf {
    wgtune_home
        .filter(|dir| !dir.is_empty())
        .map(PathBuf::from)
        .or_else(|| home.map(|home| home.join("wgtune")))
        .unwrap_or_else(|| std::env::temp_dir().join("wgtune"))
}

/// A path for something the app writes: a relative one is taken inside the [`workspace`].
pub fn in_workspace(path: PathBuf) -> PathBuf {
    if path.is_relative() { workspace().join(path) } else { path }
}

fn remember(list: &mut Vec<PathBuf>, path: PathBuf) {
    list.retain(|p| p != &path);
    list.insert(0, path);
    list.truncate(RECENT);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_workspace_is_wgtune_home_else_a_folder_in_the_home_folder() {
        let home = Some(PathBuf::from("/home/ada"));
        assert_eq!(workspace_from(Some("/data/tuning".into()), home.clone()), PathBuf::from("/data/tuning"));
        assert_eq!(workspace_from(Some("".into()), home.clone()), PathBuf::from("/home/ada/wgtune"));
        assert_eq!(workspace_from(None, home), PathBuf::from("/home/ada/wgtune"));
        assert_eq!(workspace_from(None, None), std::env::temp_dir().join("wgtune"));
    }

    #[test]
    fn only_relative_paths_move_into_the_workspace() {
        assert_eq!(in_workspace(PathBuf::from("runs/latest")), workspace().join("runs/latest"));
        assert_eq!(in_workspace(PathBuf::from("/srv/runs/a")), PathBuf::from("/srv/runs/a"));
    }
}
