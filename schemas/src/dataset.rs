//! Layout of a dataset directory and its manifest.
//!
//! ```text
//! DATASET/
//!   kreq.json                      manifest (this module's [`Manifest`]), written last
//!   events/part-000000.parquet     events, one file per input chunk, each sorted by ts_ns
//!   events/part-000001.parquet
//!   lost_events/part-000000.parquet
//!   spans/part-000000.parquet      written by `kreq correlate` (events get request_id/span_id)
//!   requests/part-000000.parquet
//!   edges/part-000000.parquet
//!   formats.json                   format files of the events (binary recordings only)
//! ```
//! Each table is a directory of Parquet files with identical schemas, so
//! `pyarrow.parquet.read_table("DATASET/events")`, `duckdb.read_parquet("DATASET/events/*.parquet")`
//! and DataFusion's listing tables open it directly. Files are written under a `.tmp` name and
//! renamed when complete, so every `*.parquet` file present is valid even after a crash.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// File name of the manifest inside a dataset.
pub const MANIFEST: &str = "kreq.json";
/// File holding the tracefs format files of a binary recording (`{"group/name": "text"}`).
pub const FORMATS: &str = "formats.json";
/// Suffix of files still being written; readers ignore them.
pub const TMP_SUFFIX: &str = ".tmp";

/// Parquet metadata key: the trace clock (`mono`, `local`, `counter`, ... or `unknown`).
pub const CLOCK_KEY: &str = "kreq.trace_clock";
/// Parquet metadata key: the input file a part came from.
pub const SOURCE_KEY: &str = "kreq.source";
/// Parquet metadata key: kernel release of the traced machine, when known.
pub const KERNEL_KEY: &str = "kreq.kernel";
/// Parquet metadata key: host name of the traced machine, when known.
pub const HOST_KEY: &str = "kreq.host";

/// Path of part number `seq` of a table directory.
pub fn part_path(dataset: &Path, table_dir: &str, seq: u64) -> PathBuf {
    dataset
        .join(table_dir)
        .join(format!("part-{seq:06}.parquet"))
}

impl Manifest {
    /// Reads `DATASET/kreq.json`; a malformed manifest is an `InvalidData` error.
    pub fn read(dataset: &Path) -> std::io::Result<Manifest> {
        let text = std::fs::read_to_string(dataset.join(MANIFEST))?;
        serde_json::from_str(&text)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
    }

    /// Writes `DATASET/kreq.json` through a temporary file renamed into place.
    pub fn write(&self, dataset: &Path) -> std::io::Result<()> {
        let tmp = dataset.join(format!("{MANIFEST}{TMP_SUFFIX}"));
        let text = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, dataset.join(MANIFEST))
    }
}

/// Description of a dataset, stored as `kreq.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`crate::SCHEMA_VERSION`] of the tables.
    pub schema_version: String,
    /// Tool and version that wrote the dataset.
    pub created_by: String,
    /// Trace clock of `ts_ns` (`mono`, `local`, `boot`, ..., `counter`, or `unknown`).
    pub trace_clock: String,
    /// Kernel release of the traced machine, when known.
    pub kernel: Option<String>,
    /// Host name of the traced machine, when known.
    pub host: Option<String>,
    /// Boot id of the traced machine (`/proc/sys/kernel/random/boot_id`), for live recordings:
    /// hashed pointers and `ts_ns` compare only within one boot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_id: Option<String>,
    /// Unix-epoch ns minus trace-clock ns, measured when a live recording started with a clock
    /// user space can read (`mono`, `boot`); exports add it to get wall-clock times.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch_offset_ns: Option<i64>,
    /// Inputs in the order they were read.
    pub sources: Vec<SourceSummary>,
    /// Total events written.
    pub events: u64,
    /// Total lost events reported (sum of known counts).
    pub lost_events: u64,
    /// Smallest and largest `ts_ns`, when there are events.
    pub time_range_ns: Option<(i64, i64)>,
    /// True when the part files, taken in name order, are globally sorted by `ts_ns`.
    pub sorted: bool,
    /// What `kreq correlate` did, once it has run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation: Option<CorrelationInfo>,
}

/// Summary of a correlation run, stored in the manifest.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CorrelationInfo {
    /// Ingress endpoints (`ADDR:PORT`) requests were started at.
    pub ingress: Vec<String>,
    /// True when the ingress was picked automatically rather than given.
    pub ingress_auto: bool,
    /// Requests found.
    pub requests: u64,
    /// Spans derived.
    pub spans: u64,
    /// Edges (linking decisions) recorded.
    pub edges: u64,
    /// Events labelled with a request.
    pub labelled_events: u64,
}

/// What one input contributed to a dataset.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SourceSummary {
    /// Path as given (`-` for stdin).
    pub path: String,
    /// Detected input format (`trace_pipe`, `trace-cmd-report`, ...).
    pub format: String,
    /// Uncompressed bytes read.
    pub bytes: u64,
    /// Lines read.
    pub lines: u64,
    /// Events written.
    pub events: u64,
    /// Lost-event reports.
    pub lost_reports: u64,
    /// Lines that could not be parsed (skipped unless `--strict`).
    pub malformed: u64,
    /// Event part files (relative to the dataset) holding this input's events.
    pub parts: Vec<String>,
    /// Trace clock the input itself names (binary inputs), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock: Option<String>,
    /// `uname` of the traced machine recorded in the input (binary inputs), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uname: Option<String>,
    /// The input ended early (a compressed input cut off mid-frame): bytes of whole lines
    /// read before the cut, all of them ingested.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truncated_at: Option<u64>,
}
