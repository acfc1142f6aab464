//! What an ingest run is asked to do, what it reports while running, and what it did.

use std::path::PathBuf;

use kreq_schemas::dataset::Manifest;

use crate::rows::MalformedLine;

/// Settings of one ingest run.
#[derive(Debug, Clone)]
pub struct IngestOptions {
    /// Dataset directory to create.
    pub output: PathBuf,
    /// Worker threads (at least 1).
    pub threads: usize,
    /// Target chunk size in bytes of text; each chunk becomes one part file.
    pub chunk_bytes: usize,
    /// Fail on the first malformed line instead of counting and skipping it.
    pub strict: bool,
    /// zstd level for Parquet pages.
    pub zstd_level: i32,
    /// Trace clock of the input (`mono`, `local`, ...), when the user knows it.
    pub trace_clock: Option<String>,
    /// Kernel release of the traced machine, when known.
    pub kernel: Option<String>,
    /// Host name of the traced machine, when known.
    pub host: Option<String>,
    /// Replace an existing dataset.
    pub force: bool,
}

impl IngestOptions {
    /// Defaults: all cores, 64 MiB chunks, zstd level [`kreq_schemas::writer::DEFAULT_ZSTD_LEVEL`].
    pub fn new(output: impl Into<PathBuf>) -> Self {
        Self {
            output: output.into(),
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            chunk_bytes: 64 << 20,
            strict: false,
            zstd_level: kreq_schemas::writer::DEFAULT_ZSTD_LEVEL,
            trace_clock: None,
            kernel: None,
            host: None,
            force: false,
        }
    }
}

/// Receives progress while ingesting (the library itself prints nothing).
pub trait Progress: Sync {
    /// `bytes` more of decompressed input were handed to the parsers.
    fn advance(&self, bytes: u64);
}

/// No progress reporting.
#[derive(Debug)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn advance(&self, _bytes: u64) {}
}

/// What an ingest run did.
#[derive(Debug)]
pub struct IngestReport {
    /// The manifest written to the dataset.
    pub manifest: Manifest,
    /// Malformed lines (the first few per chunk), with their input file.
    pub malformed: Vec<(String, MalformedLine)>,
    /// Bytes of Parquet written.
    pub parquet_bytes: u64,
    /// Parts whose text was too far out of time order to stream (late by more than a batch
    /// of rows), so they were parsed twice: whole, then sorted.
    pub parts_sorted_whole: u64,
    /// Inputs that ended early: path, bytes of whole lines before the cut, and why. Every
    /// event before the cut is in the dataset.
    pub truncated: Vec<(String, u64, String)>,
}
