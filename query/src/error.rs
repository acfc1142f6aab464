//! Errors of the query crate.

use std::path::PathBuf;

/// What can go wrong while opening or querying a dataset.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The dataset is not usable.
    #[error("{path}: {msg}")]
    Dataset {
        /// The dataset.
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },
    /// An export cannot be made from this dataset.
    #[error("{0}")]
    Export(String),
    /// DataFusion rejected or failed a query. (Not a `source`: DataFusion's message already
    /// includes its causes, which a chain printer would repeat.)
    #[error("{0}")]
    DataFusion(Box<datafusion::error::DataFusionError>),
    /// Arrow could not format or write a result.
    #[error("{0}")]
    Arrow(#[from] arrow::error::ArrowError),
    /// Parquet could not write a result.
    #[error("{0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    /// Writing a result failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl From<datafusion::error::DataFusionError> for Error {
    fn from(e: datafusion::error::DataFusionError) -> Self {
        Error::DataFusion(Box::new(e))
    }
}

/// Result of this crate.
pub type Result<T> = std::result::Result<T, Error>;
