//! A recording's decoded events -> part files, a batch at a time.

use std::path::Path;

use arrow::record_batch::RecordBatch;
use kreq_schemas::writer::MAX_ROW_GROUP_ROWS;

use crate::binary::merge::Decoder;
use crate::chunk::LostReport;
use crate::error::Result;
use crate::part::BATCH_ROWS;
use crate::sink::write_batches;

/// One part file written.
#[derive(Debug)]
pub(crate) struct Written {
    pub(crate) rows: u64,
    pub(crate) bytes: u64,
    pub(crate) time_range: Option<(i64, i64)>,
}

/// Write `first` and the decoder's next events, up to a row group, as the part file at
/// `path`, decoding and writing a batch at a time so memory holds one batch, not the part.
/// Lost-event reports met on the way go to `lost`. `to` is the path, zstd level and metadata.
pub(crate) fn write_part(
    decoder: &mut Decoder<'_>,
    first: RecordBatch,
    to: (&Path, i32, &[(String, String)]),
    lost: &mut Vec<LostReport>,
) -> Result<Written> {
    let (path, zstd_level, metadata) = to;
    let mut rows = 0usize;
    let mut range: Option<(i64, i64)> = None;
    let mut first = Some(first);
    let batches = std::iter::from_fn(|| {
        let events = match first.take() {
            Some(events) => events,
            None if rows >= MAX_ROW_GROUP_ROWS => return None,
            None => {
                let chunk = decoder.next_chunk(BATCH_ROWS.min(MAX_ROW_GROUP_ROWS - rows))?;
                lost.extend(chunk.lost);
                chunk.events
            }
        };
        rows += events.num_rows();
        if let Some((lo, hi)) = crate::summary::time_range(&events) {
            range = Some(range.map_or((lo, hi), |(a, b)| (a.min(lo), b.max(hi))));
        }
        Some(events)
    });
    let schema = kreq_schemas::events::schema();
    let bytes = write_batches(
        path,
        kreq_schemas::table::EVENTS.name,
        schema,
        batches,
        zstd_level,
        metadata,
    )?;
    Ok(Written {
        rows: rows as u64,
        bytes,
        time_range: range,
    })
}
