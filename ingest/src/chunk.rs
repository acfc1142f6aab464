//! Parsing one chunk of text (whole lines) into an `events` batch plus side information.
//!
//! Pure: bytes in, batch and reports out. Chunks are independent so they parse in parallel.

use std::borrow::Cow;

use arrow::record_batch::RecordBatch;

use crate::batch::EventBatchBuilder;
use crate::line::{parse_line, Line, LostKind};

/// Where a chunk sits in its input, for line numbers and byte offsets in reports.
#[derive(Debug, Clone, Copy, Default)]
pub struct ChunkPos {
    /// 1-based number of the chunk's first line in the input.
    pub first_line: u64,
    /// Byte offset of the chunk's first byte in the (decompressed) input.
    pub offset: u64,
}

/// A lost-events report found in the text.
#[derive(Debug, Clone, PartialEq)]
pub struct LostReport {
    /// Time of the last event before it in this chunk (filled across chunks by the caller).
    pub ts_ns: Option<i64>,
    /// CPU that lost events.
    pub cpu: u16,
    /// Count, when stated.
    pub count: Option<u64>,
    /// Wording.
    pub kind: LostKind,
    /// 1-based line number (text input only).
    pub line: Option<u64>,
}

/// A line that could not be parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct MalformedLine {
    /// 1-based line number.
    pub line: u64,
    /// Byte offset of the line's start in the input.
    pub offset: u64,
    /// What was wrong.
    pub reason: &'static str,
    /// The line, cut to 200 bytes.
    pub text: String,
}

/// The result of parsing a chunk.
#[derive(Debug)]
pub struct ParsedChunk {
    /// Events sorted by `ts_ns` (stable: equal times keep input order).
    pub events: RecordBatch,
    /// Lost-event reports in input order.
    pub lost: Vec<LostReport>,
    /// The first [`MAX_MALFORMED_KEPT`] malformed lines.
    pub malformed: Vec<MalformedLine>,
    /// All malformed lines.
    pub malformed_count: u64,
    /// Lines in the chunk.
    pub lines: u64,
    /// Time of the last event in input order.
    pub last_ts: Option<i64>,
    /// True when some timestamp was a raw counter rather than `secs.frac`.
    pub counter_clock: bool,
}

/// Malformed lines kept per chunk for reporting.
pub const MAX_MALFORMED_KEPT: usize = 10;

/// Parse whole lines of ftrace text. Invalid UTF-8 is replaced (U+FFFD), never dropped.
pub fn parse_chunk(data: &[u8], pos: ChunkPos) -> Result<ParsedChunk, arrow::error::ArrowError> {
    // Valid UTF-8 (the common case) is checked by the fast std validator and borrowed.
    let text: Cow<'_, str> = match std::str::from_utf8(data) {
        Ok(s) => Cow::Borrowed(s),
        Err(_) => String::from_utf8_lossy(data),
    };
    let text: &str = &text;
    // Lines of real traces are 80-200 bytes; a low guess only costs a regrowth.
    let mut builder = EventBatchBuilder::with_capacity(data.len() / 128);
    let mut scratch = Vec::with_capacity(16);
    let mut lost = Vec::new();
    let mut malformed = Vec::new();
    let mut malformed_count = 0;
    let mut last_ts = None;
    let mut counter_clock = false;
    let mut line_no = pos.first_line;
    let mut start = 0;
    let bytes = text.as_bytes();
    while start < bytes.len() {
        let end = memchr::memchr(b'\n', &bytes[start..]).map_or(bytes.len(), |i| start + i);
        let line = &text[start..end];
        match parse_line(line) {
            Line::Event(ev) => {
                last_ts = Some(ev.ts_ns);
                counter_clock |= !ev.ts_is_ns;
                builder.append(&ev, &mut scratch);
            }
            Line::Lost { cpu, count, kind } => lost.push(LostReport {
                ts_ns: last_ts,
                cpu,
                count,
                kind,
                line: Some(line_no),
            }),
            Line::Ignored => {}
            Line::Malformed(reason) => {
                malformed_count += 1;
                if malformed.len() < MAX_MALFORMED_KEPT {
                    malformed.push(MalformedLine {
                        line: line_no,
                        offset: pos.offset + start as u64,
                        reason,
                        text: cut(line, 200).to_owned(),
                    });
                }
            }
        }
        line_no += 1;
        start = end + 1;
    }
    let order = time_order(builder.timestamps());
    let mut events = builder.finish()?;
    if let Some(order) = order {
        events = arrow::compute::take_record_batch(&events, &order)?;
    }
    Ok(ParsedChunk {
        events,
        lost,
        malformed,
        malformed_count,
        lines: line_no - pos.first_line,
        last_ts,
        counter_clock,
    })
}

/// Indices of a stable sort by time, or None when the input is already in order (as
/// trace_pipe output nearly always is), so sorted input is never copied.
fn time_order(ts: &[i64]) -> Option<arrow::array::UInt32Array> {
    if ts.windows(2).all(|w| w[0] <= w[1]) {
        return None;
    }
    let mut idx: Vec<u32> = (0..ts.len() as u32).collect();
    idx.sort_by_key(|&i| ts[i as usize]);
    Some(arrow::array::UInt32Array::from(idx))
}

fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
