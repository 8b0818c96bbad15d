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
}

impl Settings {
    pub fn remember_model(&mut self, path: PathBuf) {
        remember(&mut self.recent_models, path);
    }

    pub fn remember_dataset(&mut self, path: PathBuf) {
        remember(&mut self.recent_datasets, path);
    }
}

fn remember(list: &mut Vec<PathBuf>, path: PathBuf) {
    list.retain(|p| p != &path);
    list.insert(0, path);
    list.truncate(RECENT);
}
