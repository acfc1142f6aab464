//! What a recording is asked to do, whom it tells when tracing starts, and what it did.

use std::path::PathBuf;
use std::time::Duration;

use kreq_ingest::rows::LostReport;
use kreq_schemas::dataset::Manifest;

use crate::profile::EventSpec;
use crate::reader::ReaderStats;

/// Settings of a recording.
#[derive(Debug, Clone)]
pub struct RecordOptions {
    /// Dataset directory to create.
    pub output: PathBuf,
    /// Events to enable, with optional filters.
    pub events: Vec<EventSpec>,
    /// Trace clock (`mono` by default, so applications can log comparable times).
    pub clock: String,
    /// Per-CPU buffer size in KiB.
    pub buffer_kb: u32,
    /// Stop after this long (otherwise when the stop flag is set).
    pub duration: Option<Duration>,
    /// Only record these processes: their threads and descendant processes at start (see
    /// [`super::scope`]) and what they fork later; empty (and no cgroups) records everything.
    pub pids: Vec<i32>,
    /// Only record the processes of these cgroup directories (their threads and descendants
    /// at start, and what those fork later).
    pub cgroups: Vec<PathBuf>,
    /// Start a new part file after this many bytes of raw pages...
    pub rotate_bytes: usize,
    /// ... or after this long, whichever comes first.
    pub rotate_every: Duration,
    /// Wake a reader when its CPU buffer is this full (tracefs `buffer_percent`, 0-100).
    pub wake_percent: u8,
    /// Longest pages may sit in the kernel buffer below that mark before being read.
    pub max_wait: Duration,
    /// zstd level of the Parquet files.
    pub zstd_level: i32,
    /// Decode and write Parquet at the lowest CPU priority (nice 19), so the traced workload
    /// keeps the CPUs; pages wait in memory when there is no spare CPU.
    pub background_encode: bool,
    /// Replace an existing dataset.
    pub force: bool,
    /// Added to every recorded time: 0, except in the two-host testbed, where two recordings
    /// of one machine stand for two hosts whose clocks are this far apart.
    pub test_shift_ns: i64,
}

impl RecordOptions {
    /// Defaults: the correlation profile, `mono`, 8 MiB per CPU, 64 MiB / 10 s parts.
    pub fn new(output: impl Into<PathBuf>) -> Self {
        Self {
            output: output.into(),
            events: crate::profile::default_profile(),
            clock: "mono".into(),
            buffer_kb: 8192,
            duration: None,
            pids: Vec::new(),
            cgroups: Vec::new(),
            rotate_bytes: 64 << 20,
            rotate_every: Duration::from_secs(10),
            wake_percent: 25,
            max_wait: Duration::from_secs(1),
            zstd_level: kreq_schemas::writer::DEFAULT_ZSTD_LEVEL,
            background_encode: true,
            force: false,
            test_shift_ns: 0,
        }
    }
}

/// What a recording did.
#[derive(Debug)]
pub struct RecordReport {
    /// The manifest written.
    pub manifest: Manifest,
    /// The tracefs instance used (already removed).
    pub instance: String,
    /// Lost-event reports (page flags and per-CPU stats).
    pub lost: Vec<LostReport>,
    /// Bytes of Parquet written.
    pub parquet_bytes: u64,
    /// What the per-CPU readers did (wakeups, pages), summed over CPUs.
    pub readers: ReaderStats,
    /// Events of the recorder's own threads (and scheduler events naming them) left out.
    pub own_events: u64,
}

/// Told when tracing has started (the instance is configured and `tracing_on` is 1).
pub trait RecordObserver: Sync {
    /// Tracing started in instance `name`.
    fn started(&self, name: &str);
}

/// An observer that ignores everything.
#[derive(Debug)]
pub struct Silent;

impl RecordObserver for Silent {
    fn started(&self, _name: &str) {}
}
