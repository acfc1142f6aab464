//! Why a trace.dat could not be read.

use crate::binary::source::SourceError;

/// Why a trace.dat file could not be read.
#[derive(Debug, Clone, thiserror::Error)]
#[error("trace.dat byte offset {offset}: {reason}")]
pub struct TraceDatError {
    /// Where in the file.
    pub offset: u64,
    /// What was wrong.
    pub reason: String,
}

impl From<TraceDatError> for SourceError {
    fn from(e: TraceDatError) -> Self {
        Self {
            offset: e.offset,
            reason: e.reason,
        }
    }
}
