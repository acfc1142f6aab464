//! Errors of the correlation crate.

use std::path::PathBuf;

/// What can go wrong while correlating or evaluating a dataset.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A Parquet file could not be read or written.
    #[error("{path}: {source}")]
    Parquet {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: parquet::errors::ParquetError,
    },
    /// Arrow data did not have the expected shape.
    #[error("{path}: {source}")]
    Arrow {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: arrow::error::ArrowError,
    },
    /// The dataset is not usable (no manifest, wrong schema version, missing column, ...).
    #[error("{path}: {msg}")]
    Dataset {
        /// The dataset or file.
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },
    /// A ground-truth file has a bad line.
    #[error("{path}:{line}: byte {offset}: {msg}")]
    Truth {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// Byte offset of the line's start.
        offset: usize,
        /// What is wrong.
        msg: String,
    },
    /// A command-line value could not be understood.
    #[error("{0}")]
    Invalid(String),
}

/// Result of this crate.
pub type Result<T> = std::result::Result<T, Error>;
