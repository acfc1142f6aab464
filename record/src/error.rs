//! Errors of the record crate.

use std::path::PathBuf;

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong while recording.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading or writing a tracefs file or the output failed.
    #[error("{path}: {source}")]
    Io {
        /// File involved.
        path: PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
    /// tracefs refused a setting or is not available.
    #[error("tracefs: {0}")]
    Tracefs(String),
    /// Decoding pages or writing the dataset failed.
    #[error(transparent)]
    Dataset(#[from] kreq_ingest::Error),
    /// A reader thread panicked (a bug).
    #[error("internal error: a reader thread panicked")]
    WorkerPanicked,
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
