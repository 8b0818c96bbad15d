//! The engine's error type. Every variant names the file, line or field at fault, because the
//! person reading it has to fix their input, not our code.

use std::path::{Path, PathBuf};

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The I/O error is part of the message rather than a `source`, so that fronts printing the
    /// chain (`{:#}`) do not say it twice.
    #[error("{path}: {error}")]
    Io { path: PathBuf, error: std::io::Error },

    #[error("{path}: {message}")]
    InvalidFile { path: PathBuf, message: String },

    #[error("{path}:{line}: {message}")]
    InvalidRecord { path: PathBuf, line: usize, message: String },

    #[error(
        "{path}: unsupported model_type `{model_type}`; wgtune supports {}{}",
        crate::model::Architecture::SUPPORTED.join(", "),
        crate::model::Architecture::hint(model_type)
    )]
    UnsupportedArchitecture { path: PathBuf, model_type: String },

    #[error("{path}: tensor `{name}` is missing")]
    MissingTensor { path: PathBuf, name: String },

    #[error("{path}: tensor `{name}` has shape {found:?}, expected {expected:?}")]
    TensorShape { path: PathBuf, name: String, found: Vec<usize>, expected: Vec<usize> },

    #[error("dataset {path}: {message}")]
    EmptyDataset { path: PathBuf, message: String },

    /// `what` is `model` or `dataset`.
    #[error("{what} {id}: {message}")]
    Download { what: &'static str, id: String, message: String },
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

    /// A run whose estimated memory exceeds the device's.
    #[error("{0}")]
    OutOfMemory(String),

    /// A panic caught inside the engine, with where it happened.
    #[error("{0}")]
    Internal(String),

    #[error("stopped")]
    Stopped,
}

impl Error {
    pub fn io(path: impl AsRef<Path>, source: std::io::Error) -> Self {
        Error::Io { path: path.as_ref().to_path_buf(), error: source }
    }

    pub fn invalid_file(path: impl AsRef<Path>, message: impl Into<String>) -> Self {
        Error::InvalidFile { path: path.as_ref().to_path_buf(), message: message.into() }
    }

    pub fn setting(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::InvalidSetting { field: field.into(), message: message.into() }
    }
}

/// Runs `f`, turning a panic inside it into [`Error::Internal`] that says what was being done
/// (`what`: "while exporting", "at step 12"), so that a bug or a driver failure ends one job with
/// an error instead of taking the app or the command down.
pub fn catch_panic<T>(what: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
        .unwrap_or_else(|panic| Err(Error::Internal(format!("internal error {what}: {}", panic_message(panic.as_ref())))))
}

/// The text a panic carried.
pub fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "unknown panic".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_an_error_saying_what_was_being_done() {
        let err = catch_panic::<()>("while exporting", || panic!("index out of bounds")).unwrap_err();
        assert!(matches!(&err, Error::Internal(_)));
        assert_eq!(err.to_string(), "internal error while exporting: index out of bounds");
        let err = catch_panic::<()>("at step 3", || panic!("{} rows", 4)).unwrap_err();
        assert_eq!(err.to_string(), "internal error at step 3: 4 rows");
        assert_eq!(catch_panic("while exporting", || Ok(5)).unwrap(), 5);
    }
}
