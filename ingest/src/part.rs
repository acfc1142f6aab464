//! One part file of a text input: blocks of whole lines -> batches of rows -> one Parquet
//! file, sorted by time.
//!
//! Text is parsed and written a block at a time, so a part of any size needs only a block of
//! text and a batch of rows in memory, and both are reused from one block to the next: on the
//! virtual machines we measured, touching fresh memory costs more than parsing it.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

use arrow::array::Int64Array;
use arrow::record_batch::RecordBatch;
use kreq_schemas::{events, writer};

use crate::chunk::{parse_chunk, ChunkParser, ChunkPos, ParsedChunk};
use crate::error::{Error, Result};
use crate::sink::write_table;

/// Bytes of text per block (lines longer than this make a longer block).
pub const BLOCK_BYTES: usize = 1 << 20;

/// Rows per batch handed to the Parquet writer: small enough that a batch stays in cache and
/// its memory is reused by the next, large enough to amortise per-batch work.
pub const BATCH_ROWS: usize = 16 * 1024;

/// Successive blocks of whole lines of one part.
pub trait Blocks {
    /// The next block and the input offset of its first byte; None after the last. `buf` is
    /// scratch the block may be read into.
    fn next_block<'b>(&'b mut self, buf: &'b mut Vec<u8>) -> io::Result<Option<(&'b [u8], u64)>>;
    /// Start again from the first block.
    fn rewind(&mut self);
}

/// A part already in memory, `offset` bytes into its input.
#[derive(Debug)]
pub struct InMemory<'a> {
    data: &'a [u8],
    offset: u64,
    at: usize,
}

impl<'a> InMemory<'a> {
    /// The whole lines of `data`, which starts `offset` bytes into its input.
    pub fn new(data: &'a [u8], offset: u64) -> Self {
        Self {
            data,
            offset,
            at: 0,
        }
    }
}

impl Blocks for InMemory<'_> {
    fn next_block<'b>(&'b mut self, _: &'b mut Vec<u8>) -> io::Result<Option<(&'b [u8], u64)>> {
        let rest = &self.data[self.at..];
        if rest.is_empty() {
            return Ok(None);
        }
        let len = if rest.len() <= BLOCK_BYTES {
            rest.len()
        } else {
            memchr::memchr(b'\n', &rest[BLOCK_BYTES - 1..]).map_or(rest.len(), |i| BLOCK_BYTES + i)
        };
        let start = self.at;
        self.at += len;
        Ok(Some((
            &self.data[start..start + len],
            self.offset + start as u64,
        )))
    }

    fn rewind(&mut self) {
        self.at = 0;
    }
}

/// The lines of a regular file whose first byte lies in a byte range, read with positional
/// reads, so that every worker reads its own part and no reader thread copies text around.
#[derive(Debug)]
pub struct FileRange<'f> {
    file: &'f File,
    first: u64,
    next: u64,
    end: u64,
    size: u64,
    block: usize,
}

impl<'f> FileRange<'f> {
    /// The lines of `file` (`size` bytes) that start at a byte in `start..end`.
    pub fn new(file: &'f File, start: u64, end: u64, size: u64) -> io::Result<Self> {
        let first = if start == 0 {
            0
        } else {
            after_newline(file, start - 1, size)?
        };
        Ok(Self {
            file,
            first,
            next: first,
            end: end.min(size),
            size,
            block: BLOCK_BYTES,
        })
    }
}

/// Offset just past the first newline at or after `at` (`size` when there is none).
fn after_newline(file: &File, mut at: u64, size: u64) -> io::Result<u64> {
    let mut buf = vec![0u8; 1 << 16];
    while at < size {
        let n = file.read_at(&mut buf, at)?;
        if n == 0 {
            break;
        }
        if let Some(i) = memchr::memchr(b'\n', &buf[..n]) {
            return Ok(at + i as u64 + 1);
        }
        at += n as u64;
    }
    Ok(size)
}

/// Append up to `want` bytes read at `at`; false once the file has no more.
fn read_more(file: &File, buf: &mut Vec<u8>, at: u64, want: usize) -> io::Result<bool> {
    let old = buf.len();
    buf.resize(old + want, 0);
    let mut got = 0;
    while got < want {
        match file.read_at(&mut buf[old + got..], at + got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                buf.truncate(old);
                return Err(e);
            }
        }
    }
    buf.truncate(old + got);
    Ok(got == want)
}

impl Blocks for FileRange<'_> {
    fn next_block<'b>(&'b mut self, buf: &'b mut Vec<u8>) -> io::Result<Option<(&'b [u8], u64)>> {
        if self.next >= self.end {
            return Ok(None);
        }
        buf.clear();
        let mut more = read_more(self.file, buf, self.next, self.block)?;
        let mut scanned = 0;
        let cut = loop {
            // Lines that start at or after `end` belong to the next part.
            let last_start = (self.end - 1 - self.next) as usize;
            let found = if last_start < buf.len() {
                memchr::memchr(b'\n', &buf[last_start..]).map(|i| last_start + i + 1)
            } else {
                memchr::memrchr(b'\n', &buf[scanned..]).map(|i| scanned + i + 1)
            };
            match found {
                Some(cut) => break cut,
                None if !more => break buf.len(),
                None => {
                    scanned = buf.len();
                    let at = self.next + buf.len() as u64;
                    more = read_more(self.file, buf, at, self.block)?;
                }
            }
        };
        buf.truncate(cut);
        let offset = self.next;
        self.next += cut as u64;
        if cut == 0 {
            self.next = self.size;
            return Ok(None);
        }
        Ok(Some((&buf[..], offset)))
    }

    fn rewind(&mut self) {
        self.next = self.first;
    }
}

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
}

/// Why streaming a part stopped before its end.
#[derive(Debug)]
enum Stream {
    Io(io::Error),
    Arrow(arrow::error::ArrowError),
    /// A batch went back in time: the part must be sorted as a whole.
    Unordered,
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
/// Text already in time order (trace_pipe, trace-cmd report) streams through; otherwise the
/// partial file is dropped and the part is parsed whole, sorted and written.
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
    let mut range: Option<(i64, i64)> = None;
    let mut rows = 0u64;
    let written = match next() {
        Err(e) => Err(writer::WriteError::Batch(e)),
        Ok(None) => Ok(0),
        Ok(Some(first)) => {
            let batches = std::iter::once(Ok(first))
                .chain(std::iter::from_fn(|| next().transpose()))
                .map(|b| {
                    let b = b?;
                    let ts = b
                        .column(0)
                        .as_any()
                        .downcast_ref::<Int64Array>()
                        .ok_or(Stream::Unordered)?
                        .values();
                    let in_order = ts.windows(2).all(|w| w[0] <= w[1])
                        && range.is_none_or(|(_, last)| ts.first().is_none_or(|&t| last <= t));
                    if !in_order {
                        return Err(Stream::Unordered);
                    }
                    if let (Some(&lo), Some(&hi)) = (ts.first(), ts.last()) {
                        range = Some((range.map_or(lo, |r| r.0), hi));
                    }
                    rows += b.num_rows() as u64;
                    Ok(b)
                });
            writer::write_parquet(
                to.path,
                "events",
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
        }),
        Err(writer::WriteError::Batch(Stream::Unordered)) => {
            blocks.rewind();
            let (text, offset) = whole(blocks).map_err(|e| Error::io(to.input, e))?;
            let pos = ChunkPos {
                first_line: 1,
                offset,
            };
            write_parsed(parse_chunk(&text, pos)?, to)
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
            "events",
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Blocks of `text` read as ranges of `part` bytes, in `block`-byte reads.
    fn ranges(text: &[u8], part: u64, block: usize) -> Vec<(Vec<u8>, u64)> {
        let dir = std::env::temp_dir().join(format!("kreq-part-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join(format!("t-{part}-{block}"));
        std::fs::write(&path, text).expect("write");
        let file = File::open(&path).expect("open");
        let size = text.len() as u64;
        let mut out = Vec::new();
        let mut start = 0;
        while start < size {
            let end = size.min(start + part);
            let mut r = FileRange::new(&file, start, end, size).expect("range");
            r.block = block;
            let mut buf = Vec::new();
            while let Some((b, at)) = r.next_block(&mut buf).expect("read") {
                out.push((b.to_vec(), at));
            }
            start = end;
        }
        let _ = std::fs::remove_file(&path);
        out
    }

    #[test]
    fn ranges_read_every_line_once_in_whole_lines() {
        let mut text: Vec<u8> = (0..300)
            .flat_map(|i| format!("line {i} {}\n", "x".repeat(i * 7 % 61)).into_bytes())
            .collect();
        // A line longer than any block, and a last line without a newline.
        text.extend_from_slice(&[b'y'; 700]);
        text.extend_from_slice(b"\nend");
        for part in [1, 13, 64, 200, 1000, 1 << 20] {
            for block in [1, 16, 100, 4096] {
                let blocks = ranges(&text, part, block);
                let mut joined = Vec::new();
                for (b, at) in &blocks {
                    assert_eq!(*at as usize, joined.len(), "part {part} block {block}");
                    assert!(b.ends_with(b"\n") || b.ends_with(b"end"));
                    joined.extend_from_slice(b);
                }
                assert_eq!(joined, text, "part {part} block {block}");
            }
        }
    }

    #[test]
    fn in_memory_blocks_are_whole_lines() {
        let text: Vec<u8> = (0..200_000)
            .flat_map(|i| format!("line {i}\n").into_bytes())
            .collect();
        let mut m = InMemory::new(&text, 5);
        let mut joined = Vec::new();
        let mut n = 0;
        while let Some((b, at)) = m.next_block(&mut Vec::new()).expect("block") {
            assert_eq!(at, 5 + joined.len() as u64);
            assert!(b.ends_with(b"\n"));
            joined.extend_from_slice(b);
            n += 1;
        }
        assert!(n > 1);
        assert_eq!(joined, text);
    }
}
