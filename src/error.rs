//! The engine's error type. Every variant names the file, line or field at fault, because the
//! person reading it has to fix their input, not our code.

use std::path::{Path, PathBuf};

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{path}: {message}")]
    InvalidFile { path: PathBuf, message: String },

    #[error("{path}:{line}: {message}")]
    InvalidRecord { path: PathBuf, line: usize, message: String },

    #[error(
        "{path}: unsupported model_type `{model_type}`; wgtune supports {}",
        crate::model::Architecture::SUPPORTED.join(", ")
    )]
    UnsupportedArchitecture { path: PathBuf, model_type: String },

    #[error("{path}: tensor `{name}` is missing")]
    MissingTensor { path: PathBuf, name: String },

    #[error("{path}: tensor `{name}` has shape {found:?}, expected {expected:?}")]
    TensorShape { path: PathBuf, name: String, found: Vec<usize>, expected: Vec<usize> },

    #[error("dataset {path}: {message}")]
    EmptyDataset { path: PathBuf, message: String },

    #[error("invalid setting `{field}`: {message}")]
    InvalidSetting { field: String, message: String },

    #[error("tokenizer: {0}")]
    Tokenizer(String),

    #[error("chat template: {0}")]
    Template(String),

    #[error("device: {0}")]
    Device(String),

    #[error("{0}")]
    NonFinite(String),

    #[error("stopped")]
    Stopped,
}

impl Error {
    pub fn io(path: impl AsRef<Path>, source: std::io::Error) -> Self {
        Error::Io { path: path.as_ref().to_path_buf(), source }
    }

    pub fn invalid_file(path: impl AsRef<Path>, message: impl Into<String>) -> Self {
        Error::InvalidFile { path: path.as_ref().to_path_buf(), message: message.into() }
    }

    pub fn setting(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::InvalidSetting { field: field.into(), message: message.into() }
    }
}
