//! Errors of the ingest crate.

use std::path::PathBuf;

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong while ingesting a trace.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading an input or writing an output failed.
    #[error("{path}: {source}")]
    Io {
        /// File involved (`-` for stdin).
        path: PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
    /// A line could not be parsed and strict mode was on.
    #[error("{file}:{line}: byte offset {offset}: malformed line ({reason}): {text}")]
    Malformed {
        /// Input file (`-` for stdin).
        file: String,
        /// 1-based line number.
        line: u64,
        /// Byte offset of the start of the line in the (decompressed) input.
        offset: u64,
        /// What was wrong.
        reason: &'static str,
        /// The line, cut to a readable length.
        text: String,
    },
    /// Writing Parquet failed.
    #[error("{path}: writing parquet: {source}")]
    Parquet {
        /// File being written.
        path: PathBuf,
        /// Underlying error.
        source: parquet::errors::ParquetError,
    },
    /// Building Arrow arrays failed (a bug: the schema and builders disagree).
    #[error("building arrow batch: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    /// The output dataset already holds data.
    #[error("{0}: output dataset already exists and is not empty (use --force to replace it)")]
    OutputExists(PathBuf),
    /// A trace.dat input could not be read.
    #[error("{path}: {source}")]
    TraceDat {
        /// The input.
        path: PathBuf,
        /// What was wrong, with its byte offset.
        source: crate::tracedat::TraceDatError,
    },
    /// An input yielded no event at all: it is not a trace kreq reads (random bytes, prose,
    /// a format it does not know). Nothing is written.
    #[error(
        "{path}: not an ftrace trace kreq can read: no event in {lines} line(s) \
         ({malformed} unparsed; detected format: {format}); nothing was written"
    )]
    NotATrace {
        /// The input.
        path: String,
        /// The format its first bytes looked like.
        format: String,
        /// Lines read.
        lines: u64,
        /// Lines that did not parse.
        malformed: u64,
    },
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
