//! Warehouse errors.

use std::path::PathBuf;

/// Why a warehouse operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The directory is not a warehouse, or is damaged.
    #[error("{path}: {msg}")]
    Layout {
        /// The directory.
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },
    /// A host, date or batch id that cannot name a partition.
    #[error("{what} {value:?} cannot name a partition: {rule}")]
    Value {
        /// `host`, `date` or `batch`.
        what: &'static str,
        /// The value given.
        value: String,
        /// What a value must be.
        rule: &'static str,
    },
    /// A batch record could not be written or read.
    #[error("{path}: {source}")]
    Json {
        /// The record.
        path: PathBuf,
        /// The underlying error.
        source: serde_json::Error,
    },
}

/// Attach the path to an I/O error.
pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.into();
    move |source| Error::Io { path, source }
}

/// Result with [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
