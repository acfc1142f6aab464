//! A recording's decoded events -> part files, a batch at a time.

use std::path::Path;

use arrow::record_batch::RecordBatch;
use kreq_ingest::binary::merge::Decoder;
use kreq_ingest::dataset::{write_events_part, PartFile};
use kreq_ingest::rows::LostReport;
use kreq_ingest::rows::BATCH_ROWS;
use kreq_schemas::writer::MAX_ROW_GROUP_ROWS;

use crate::error::Result;

/// Write `first` and the decoder's next events, up to a row group, as the part file at
/// `path`, decoding and writing a batch at a time so memory holds one batch, not the part.
/// Lost-event reports met on the way go to `lost`. `to` is the path, zstd level and metadata.
pub(crate) fn write_part(
    decoder: &mut Decoder<'_>,
    first: RecordBatch,
    to: (&Path, i32, &[(String, String)]),
    lost: &mut Vec<LostReport>,
) -> Result<PartFile> {
    let (path, zstd_level, metadata) = to;
    let mut rows = 0usize;
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
        Some(Ok::<_, std::convert::Infallible>(events))
    });
    let written = write_events_part(path, batches, zstd_level, metadata)?;
    Ok(written.unwrap_or_else(|never| match never {}))
}
