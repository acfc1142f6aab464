//! Writing tables as Parquet files that are valid whenever they are visible.

use std::path::Path;
use std::sync::Arc;

use arrow::array::{ArrayRef, Int32Array, Int64Array, UInt16Array};
use arrow::record_batch::RecordBatch;
use kreq_schemas::{lost_events, writer};

use crate::error::{Error, Result};
use crate::intern::Interner;
use crate::rows::LostReport;

/// Write `batch` to `path` atomically: into `path.tmp`, fsync, then rename. Returns the file size.
pub fn write_table(
    path: &Path,
    table: &str,
    batch: &RecordBatch,
    zstd_level: i32,
    metadata: &[(String, String)],
) -> Result<u64> {
    let batches = [batch.clone()];
    write_batches(path, table, batch.schema(), batches, zstd_level, metadata)
}

/// [`write_table`] for batches (all of `schema`) produced while the file is written.
pub fn write_batches(
    path: &Path,
    table: &str,
    schema: arrow::datatypes::SchemaRef,
    batches: impl IntoIterator<Item = RecordBatch>,
    zstd_level: i32,
    metadata: &[(String, String)],
) -> Result<u64> {
    let batches = batches.into_iter().map(Ok::<_, std::convert::Infallible>);
    writer::write_parquet(path, table, schema, batches, zstd_level, metadata).map_err(|e| match e {
        writer::WriteError::Io(e) => Error::io(path, e),
        writer::WriteError::Parquet(source) => Error::Parquet {
            path: path.to_owned(),
            source,
        },
        writer::WriteError::Batch(never) => match never {},
    })
}

/// Build the `lost_events` batch; `reports` pairs each report with its source name.
pub fn lost_events_batch(reports: &[(String, LostReport)]) -> Result<RecordBatch> {
    let mut kinds = Interner::default();
    let mut sources = Interner::default();
    let kind_keys: Int32Array = reports
        .iter()
        .map(|(_, r)| Some(kinds.intern(r.kind.as_str())))
        .collect();
    let source_keys: Int32Array = reports
        .iter()
        .map(|(s, _)| Some(sources.intern(s)))
        .collect();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(reports.iter().map(|(_, r)| r.ts_ns).collect::<Int64Array>()),
        Arc::new(
            reports
                .iter()
                .map(|(_, r)| Some(r.cpu))
                .collect::<UInt16Array>(),
        ),
        Arc::new(
            reports
                .iter()
                .map(|(_, r)| r.count.and_then(|c| i64::try_from(c).ok()))
                .collect::<Int64Array>(),
        ),
        kinds.dictionary(kind_keys)?,
        sources.dictionary(source_keys)?,
        Arc::new(
            reports
                .iter()
                .map(|(_, r)| r.line.and_then(|l| i64::try_from(l).ok()))
                .collect::<Int64Array>(),
        ),
    ];
    Ok(RecordBatch::try_new(lost_events::schema(), columns)?)
}
