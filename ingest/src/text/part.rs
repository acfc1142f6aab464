//! One part file of a text input: blocks of whole lines -> batches of rows -> one Parquet
//! file, sorted by time.
//!
//! Text is parsed and written a block at a time, so a part of any size needs only a block of
//! text and a batch of rows in memory, and both are reused from one block to the next: on the
//! virtual machines we measured, touching fresh memory costs more than parsing it.

use std::io;
use std::path::Path;

use arrow::record_batch::RecordBatch;
use kreq_schemas::events;

use super::blocks::Blocks;
use super::chunk::{parse_chunk, ChunkParser, ChunkPos};
use super::reorder::{Reorder, Unordered};
use crate::dataset::{write_events_batch, write_events_part, PartFile};
use crate::error::{Error, Result};
use crate::rows::{ParsedChunk, BATCH_ROWS};

/// A part parsed and written.
#[derive(Debug)]
pub struct WrittenPart {
    /// What the part held besides its events (its `events` batch is empty).
    pub parsed: ParsedChunk,
    /// The file written (no file when the part held no event).
    pub file: PartFile,
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
/// lines (see [`crate::text::reorder`]); text further out of order makes the partial file dropped
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
    let batches = std::iter::from_fn(|| ordered().transpose());
    match write_events_part(to.path, batches, to.zstd_level, to.metadata)? {
        Ok(file) => Ok(WrittenPart {
            parsed: parser.finish(empty()),
            file,
            sorted_whole: false,
        }),
        Err(Stream::Unordered) => {
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
        Err(Stream::Io(e)) => Err(Error::io(to.input, e)),
        Err(Stream::Arrow(e)) => Err(e.into()),
    }
}

/// Write the rows already in `parsed` (sorted by time) as the part file `to.path`, unless there
/// are none; its `events` batch is emptied once on disk.
pub fn write_parsed(mut parsed: ParsedChunk, to: PartTarget<'_>) -> Result<WrittenPart> {
    let file = write_events_batch(to.path, &parsed.events, to.zstd_level, to.metadata)?;
    // The rows are on disk; keeping them until the run ends would only hold memory.
    parsed.events = RecordBatch::new_empty(events::schema());
    Ok(WrittenPart {
        parsed,
        file,
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
