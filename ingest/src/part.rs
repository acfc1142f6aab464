//! One part file of a text input: blocks of whole lines -> batches of rows -> one Parquet
//! file, sorted by time.
//!
//! Text is parsed and written a block at a time, so a part of any size needs only a block of
//! text and a batch of rows in memory, and both are reused from one block to the next: on the
//! virtual machines we measured, touching fresh memory costs more than parsing it.

use std::io;
use std::path::Path;

use arrow::record_batch::RecordBatch;
use kreq_schemas::{events, writer};

pub use crate::blocks::{Blocks, FileRange, InMemory, BLOCK_BYTES};
use crate::chunk::{parse_chunk, ChunkParser, ChunkPos, ParsedChunk};
use crate::error::{Error, Result};
use crate::reorder::{Reorder, Unordered};
use crate::sink::write_table;

/// Rows per batch handed to the Parquet writer: small enough that a batch stays in cache and
/// its memory is reused by the next, large enough to amortise per-batch work.
pub const BATCH_ROWS: usize = 16 * 1024;

/// A part parsed and written.
#[derive(Debug)]
pub struct WrittenPart {
    /// What the part held besides its events (its `events` batch is empty).
    pub parsed: ParsedChunk,
    /// Events written.
    pub rows: u64,
    /// Size of the file (0 when the part held no event and no file was written).
    pub bytes: u64,
    /// Smallest and largest `ts_ns`.
    pub time_range: Option<(i64, i64)>,
    /// The text was too far out of time order to stream: it was parsed again whole and
    /// sorted.
    pub sorted_whole: bool,
}

/// Why streaming a part stopped before its end.
#[derive(Debug)]
enum Stream {
    Io(io::Error),
    Arrow(arrow::error::ArrowError),
    /// A batch went back in time too far: the part must be sorted as a whole.
    Unordered,
}

impl From<Unordered> for Stream {
    fn from(e: Unordered) -> Self {
        match e {
            Unordered::TooLate => Stream::Unordered,
            Unordered::Arrow(e) => Stream::Arrow(e),
        }
    }
}

/// Where and how a part is written.
#[derive(Debug, Clone, Copy)]
pub struct PartTarget<'a> {
    /// The input the text comes from, for error messages.
    pub input: &'a Path,
    /// The Parquet file to write.
    pub path: &'a Path,
    /// zstd level.
    pub zstd_level: i32,
    /// File metadata.
    pub metadata: &'a [(String, String)],
}

/// Parse the part in `blocks` and write its events to `to.path` sorted by time, calling
/// `progress` with the bytes of each block parsed. Lines are numbered from 1 within the part.
/// Text in time order (trace_pipe, trace-cmd report) streams through, and so do rare late
/// lines (see [`crate::reorder`]); text further out of order makes the partial file dropped
/// and the part parsed whole, sorted and written.
pub fn write_part(
    blocks: &mut dyn Blocks,
    to: PartTarget<'_>,
    progress: &dyn Fn(u64),
) -> Result<WrittenPart> {
    let empty = || RecordBatch::new_empty(events::schema());
    let mut parser = ChunkParser::new(1);
    let mut buf = Vec::new();
    let mut next = || -> std::result::Result<Option<RecordBatch>, Stream> {
        loop {
            if parser.rows() >= BATCH_ROWS {
                return parser.take_batch().map_err(Stream::Arrow);
            }
            match blocks.next_block(&mut buf).map_err(Stream::Io)? {
                Some((block, offset)) => {
                    parser.parse(block, offset);
                    progress(block.len() as u64);
                }
                None => return parser.take_batch().map_err(Stream::Arrow),
            }
        }
    };
    // Batches in time order: late lines within reach are merged in (see `reorder`).
    let mut reorder = Reorder::default();
    let mut parsed_all = false;
    let mut ordered = || -> std::result::Result<Option<RecordBatch>, Stream> {
        while !parsed_all {
            match next()? {
                Some(b) => {
                    if let Some(out) = reorder.push(b)? {
                        return Ok(Some(out));
                    }
                }
                None => parsed_all = true,
            }
        }
        Ok(reorder.finish())
    };
    let mut range: Option<(i64, i64)> = None;
    let mut rows = 0u64;
    let written = match ordered() {
        Err(e) => Err(writer::WriteError::Batch(e)),
        Ok(None) => Ok(0),
        Ok(Some(first)) => {
            let batches = std::iter::once(Ok(first))
                .chain(std::iter::from_fn(|| ordered().transpose()))
                .inspect(|b| {
                    if let Ok(b) = b {
                        if let Some((lo, hi)) = crate::summary::time_range(b) {
                            range = Some(range.map_or((lo, hi), |(a, _)| (a, hi)));
                        }
                        rows += b.num_rows() as u64;
                    }
                });
            writer::write_parquet(
                to.path,
                kreq_schemas::table::EVENTS.name,
                events::schema(),
                batches,
                to.zstd_level,
                to.metadata,
            )
        }
    };
    match written {
        Ok(bytes) => Ok(WrittenPart {
            parsed: parser.finish(empty()),
            rows,
            bytes,
            time_range: range,
            sorted_whole: false,
        }),
        Err(writer::WriteError::Batch(Stream::Unordered)) => {
            blocks.rewind();
            let (text, offset) = whole(blocks).map_err(|e| Error::io(to.input, e))?;
            let pos = ChunkPos {
                first_line: 1,
                offset,
            };
            let written = write_parsed(parse_chunk(&text, pos)?, to)?;
            Ok(WrittenPart {
                sorted_whole: true,
                ..written
            })
        }
        Err(writer::WriteError::Batch(Stream::Io(e))) => Err(Error::io(to.input, e)),
        Err(writer::WriteError::Batch(Stream::Arrow(e))) => Err(e.into()),
        Err(writer::WriteError::Io(e)) => Err(Error::io(to.path, e)),
        Err(writer::WriteError::Parquet(cause)) => Err(Error::Parquet {
            path: to.path.to_owned(),
            cause,
        }),
    }
}

/// Write the rows already in `parsed` (sorted by time) as the part file `to.path`, unless there
/// are none; its `events` batch is emptied once on disk.
pub fn write_parsed(mut parsed: ParsedChunk, to: PartTarget<'_>) -> Result<WrittenPart> {
    let time_range = crate::summary::time_range(&parsed.events);
    let rows = parsed.events.num_rows() as u64;
    let bytes = if rows > 0 {
        write_table(
            to.path,
            kreq_schemas::table::EVENTS.name,
            &parsed.events,
            to.zstd_level,
            to.metadata,
        )?
    } else {
        0
    };
    // The rows are on disk; keeping them until the run ends would only hold memory.
    parsed.events = RecordBatch::new_empty(events::schema());
    Ok(WrittenPart {
        parsed,
        rows,
        bytes,
        time_range,
        sorted_whole: false,
    })
}

/// All blocks of a part as one text, with the offset of its first byte.
fn whole(blocks: &mut dyn Blocks) -> io::Result<(Vec<u8>, u64)> {
    let mut buf = Vec::new();
    let mut all = Vec::new();
    let mut first = None;
    while let Some((block, offset)) = blocks.next_block(&mut buf)? {
        first.get_or_insert(offset);
        all.extend_from_slice(block);
    }
    Ok((all, first.unwrap_or(0)))
}
