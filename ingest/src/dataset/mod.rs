//! The dataset writer shared by `kreq ingest` (text and trace.dat) and `kreq record`: the
//! directory, part naming, the time range and sortedness of the parts, the `lost_events`
//! table, a schema-only file for a table with no rows, and the manifest.
//!
//! Every file is valid whenever it is visible: parts and tables are written to a temporary
//! name and renamed ([`kreq_schemas::writer::write_parquet`]), and the manifest likewise, so a
//! recording killed at any point leaves a readable dataset of the parts finished so far.

pub mod parquet;

use std::path::{Path, PathBuf};

use arrow::record_batch::RecordBatch;
use kreq_schemas::dataset::{self, Manifest};
use kreq_schemas::table::{EVENTS, LOST_EVENTS};
use kreq_schemas::{events, SCHEMA_VERSION};

use crate::error::{Error, Result};
use crate::rows::LostReport;
use parquet::{lost_events_batch, write_batches, write_table};

/// Path of the `events` part number `seq` of the dataset at `dir`. Parts are numbered in time
/// order of their source, so their names sort as their rows do.
pub fn part_path(dir: &Path, seq: u64) -> PathBuf {
    dataset::part_path(dir, EVENTS.name, seq)
}

/// A part's name in the manifest: its path relative to the dataset (`events/part-000000.parquet`).
pub fn part_name(path: &Path) -> String {
    let file = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    format!("{}/{file}", EVENTS.name)
}

/// Smallest and largest `ts_ns` of an events batch.
pub fn time_range(batch: &RecordBatch) -> Option<(i64, i64)> {
    let ts = batch
        .column_by_name(events::TS_NS)?
        .as_any()
        .downcast_ref::<arrow::array::Int64Array>()?;
    arrow::compute::min(ts).zip(arrow::compute::max(ts))
}

/// Key-value metadata of every Parquet file of a dataset: the input it came from, its trace
/// clock, and the traced machine's kernel and host name when known.
pub fn file_metadata(
    source: &str,
    clock: &str,
    kernel: Option<&str>,
    host: Option<&str>,
) -> Vec<(String, String)> {
    let mut kv = vec![
        (dataset::SOURCE_KEY.to_owned(), source.to_owned()),
        (dataset::CLOCK_KEY.to_owned(), clock.to_owned()),
    ];
    kv.extend(kernel.map(|k| (dataset::KERNEL_KEY.to_owned(), k.to_owned())));
    kv.extend(host.map(|h| (dataset::HOST_KEY.to_owned(), h.to_owned())));
    kv
}

/// One `events` part file written.
#[derive(Debug, Clone, Copy, Default)]
pub struct PartFile {
    /// Rows written.
    pub rows: u64,
    /// Size of the file (0 when there was no row and no file was written).
    pub bytes: u64,
    /// Smallest and largest `ts_ns`.
    pub time_range: Option<(i64, i64)>,
}

/// Write `batches` (each sorted by time, later batches never earlier) as the `events` part at
/// `path`, a batch at a time, so memory holds one batch and not the part. No file is written
/// when the first batch is missing. The outer error is the file's; the inner one stops the
/// batches (`E`) and leaves no file.
pub fn write_events_part<E>(
    path: &Path,
    batches: impl IntoIterator<Item = std::result::Result<RecordBatch, E>>,
    zstd_level: i32,
    metadata: &[(String, String)],
) -> Result<std::result::Result<PartFile, E>> {
    let mut batches = batches.into_iter();
    let first = match batches.next() {
        None => return Ok(Ok(PartFile::default())),
        Some(Err(e)) => return Ok(Err(e)),
        Some(Ok(b)) => b,
    };
    let mut part = PartFile::default();
    let batches = std::iter::once(Ok(first)).chain(batches).inspect(|b| {
        if let Ok(b) = b {
            if let Some((lo, hi)) = time_range(b) {
                part.time_range = Some(
                    part.time_range
                        .map_or((lo, hi), |(a, h)| (a.min(lo), h.max(hi))),
                );
            }
            part.rows += b.num_rows() as u64;
        }
    });
    let written = kreq_schemas::writer::write_parquet(
        path,
        EVENTS.name,
        events::schema(),
        batches,
        zstd_level,
        metadata,
    );
    match written {
        Ok(bytes) => Ok(Ok(PartFile { bytes, ..part })),
        Err(kreq_schemas::writer::WriteError::Batch(e)) => Ok(Err(e)),
        Err(kreq_schemas::writer::WriteError::Io(e)) => Err(Error::io(path, e)),
        Err(kreq_schemas::writer::WriteError::Parquet(source)) => Err(Error::Parquet {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Write one in-memory `events` batch (sorted by time) as the part at `path`, unless it has no
/// row.
pub fn write_events_batch(
    path: &Path,
    batch: &RecordBatch,
    zstd_level: i32,
    metadata: &[(String, String)],
) -> Result<PartFile> {
    if batch.num_rows() == 0 {
        return Ok(PartFile::default());
    }
    let bytes = write_batches(
        path,
        EVENTS.name,
        events::schema(),
        [batch.clone()],
        zstd_level,
        metadata,
    )?;
    Ok(PartFile {
        rows: batch.num_rows() as u64,
        bytes,
        time_range: time_range(batch),
    })
}

/// A dataset being written: its directory and the manifest kept up to date with the parts.
///
/// Parts may be written by any thread (their paths come from [`part_path`]); the writer is
/// told about each, in part order, with [`DatasetWriter::add_part`].
#[derive(Debug)]
pub struct DatasetWriter {
    dir: PathBuf,
    zstd_level: i32,
    manifest: Manifest,
    lost: Vec<(String, LostReport)>,
    bytes: u64,
    /// Largest time of the parts added so far.
    last: Option<i64>,
}

/// A dataset closed by [`DatasetWriter::finish`].
#[derive(Debug)]
pub struct Finished {
    /// The manifest written.
    pub manifest: Manifest,
    /// Bytes of Parquet written, parts and tables together.
    pub parquet_bytes: u64,
    /// The lost-event reports written to `lost_events`, in the order they were added.
    pub lost: Vec<LostReport>,
}

impl DatasetWriter {
    /// Create the dataset directory with its table folders. An existing non-empty dataset is
    /// an error unless `force`, which removes its tables and manifest first.
    pub fn create(dir: &Path, force: bool, zstd_level: i32) -> Result<Self> {
        prepare_output(dir, force)?;
        Ok(Self {
            dir: dir.to_owned(),
            zstd_level,
            manifest: Manifest {
                schema_version: SCHEMA_VERSION.into(),
                created_by: concat!("kreq ", env!("CARGO_PKG_VERSION")).into(),
                sorted: true,
                ..Default::default()
            },
            lost: Vec::new(),
            bytes: 0,
            last: None,
        })
    }

    /// The dataset directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// zstd level of every file.
    pub fn zstd_level(&self) -> i32 {
        self.zstd_level
    }

    /// The manifest, for the caller's fields (clock, host, kernel, sources). Event counts,
    /// lost events, time range and sortedness are the writer's.
    pub fn manifest_mut(&mut self) -> &mut Manifest {
        &mut self.manifest
    }

    /// An `events` part was written; parts are added in their order.
    pub fn add_part(&mut self, part: &PartFile) {
        self.bytes += part.bytes;
        self.manifest.events += part.rows;
        if let Some((lo, hi)) = part.time_range {
            let m = &mut self.manifest;
            m.sorted &= self.last.is_none_or(|h| h <= lo);
            self.last = Some(self.last.map_or(hi, |h| h.max(hi)));
            m.time_range_ns = Some(
                m.time_range_ns
                    .map_or((lo, hi), |(a, b)| (a.min(lo), b.max(hi))),
            );
        }
    }

    /// Lost-event reports of input `source`, for the `lost_events` table.
    pub fn add_lost(&mut self, source: &str, reports: impl IntoIterator<Item = LostReport>) {
        for r in reports {
            self.manifest.lost_events += r.count.unwrap_or(0);
            self.lost.push((source.to_owned(), r));
        }
    }

    /// Write the manifest as it stands (a recording refreshes it after every part).
    pub fn write_manifest(&self) -> Result<()> {
        self.manifest
            .write(&self.dir)
            .map_err(|e| Error::io(self.dir.join(dataset::MANIFEST), e))
    }

    /// Write the `lost_events` table, a schema-only `events` file when no part holds a row
    /// (so the table stays readable), and the manifest. `metadata` goes on both files.
    pub fn finish(mut self, metadata: &[(String, String)]) -> Result<Finished> {
        let batch = lost_events_batch(&self.lost)?;
        let path = dataset::part_path(&self.dir, LOST_EVENTS.name, 0);
        self.bytes += write_table(&path, LOST_EVENTS.name, &batch, self.zstd_level, metadata)?;
        if self.manifest.events == 0 {
            let empty = RecordBatch::new_empty(events::schema());
            let path = part_path(&self.dir, 0);
            self.bytes += write_table(&path, EVENTS.name, &empty, self.zstd_level, metadata)?;
        }
        self.write_manifest()?;
        Ok(Finished {
            manifest: self.manifest,
            parquet_bytes: self.bytes,
            lost: self.lost.into_iter().map(|(_, r)| r).collect(),
        })
    }

    /// Remove what was written (`parts`, then the table folders and the directory if left
    /// empty): an input that turned out not to be a trace leaves no dataset behind.
    pub fn discard(self, parts: impl IntoIterator<Item = String>) {
        for part in parts {
            let _ = std::fs::remove_file(self.dir.join(part));
        }
        for sub in [EVENTS.name, LOST_EVENTS.name] {
            let _ = std::fs::remove_dir(self.dir.join(sub));
        }
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// Make `dir` an empty dataset with its table folders (see [`DatasetWriter::create`]).
fn prepare_output(dir: &Path, force: bool) -> Result<()> {
    let io = |e| Error::io(dir, e);
    if dir.exists() {
        let non_empty = std::fs::read_dir(dir).map_err(io)?.next().is_some();
        if non_empty {
            if !force {
                return Err(Error::OutputExists(dir.to_owned()));
            }
            for sub in [EVENTS.name, LOST_EVENTS.name] {
                let p = dir.join(sub);
                if p.exists() {
                    std::fs::remove_dir_all(&p).map_err(|e| Error::io(&p, e))?;
                }
            }
            for file in [dataset::MANIFEST, dataset::FORMATS] {
                let m = dir.join(file);
                if m.exists() {
                    std::fs::remove_file(&m).map_err(|e| Error::io(&m, e))?;
                }
            }
        }
    }
    for sub in [EVENTS.name, LOST_EVENTS.name] {
        let p = dir.join(sub);
        std::fs::create_dir_all(&p).map_err(|e| Error::io(&p, e))?;
    }
    Ok(())
}
