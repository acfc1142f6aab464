//! Parsing one chunk of text (whole lines) into an `events` batch plus side information.
//!
//! Pure: bytes in, batch and reports out. Chunks are independent so they parse in parallel.

use std::borrow::Cow;

use arrow::record_batch::RecordBatch;

use crate::batch::EventBatchBuilder;
use crate::rows::{LostReport, MalformedLine, ParsedChunk};
use crate::text::line::{parse_line, EventLine, Line};

/// Where a chunk sits in its input, for line numbers and byte offsets in reports.
#[derive(Debug, Clone, Copy, Default)]
pub struct ChunkPos {
    /// 1-based number of the chunk's first line in the input.
    pub first_line: u64,
    /// Byte offset of the chunk's first byte in the (decompressed) input.
    pub offset: u64,
}

/// Malformed lines kept per chunk for reporting.
pub const MAX_MALFORMED_KEPT: usize = 10;

/// Parse whole lines of ftrace text into one batch sorted by time. Invalid UTF-8 is replaced
/// (U+FFFD), never dropped.
pub fn parse_chunk(data: &[u8], pos: ChunkPos) -> Result<ParsedChunk, arrow::error::ArrowError> {
    let mut parser = ChunkParser::new(pos.first_line);
    // Lines of real traces are 80-200 bytes; a low guess only costs a regrowth.
    parser.reserve(data.len() / 128);
    parser.parse(data, pos.offset);
    let events = parser
        .take_batch()?
        .unwrap_or_else(|| RecordBatch::new_empty(kreq_schemas::events::schema()));
    Ok(parser.finish(sorted_by_time(events)?))
}

/// Parses the text of one part a block of whole lines at a time, so that a caller can write
/// each batch of rows while the next is parsed and memory stays bounded by the block size.
#[derive(Debug)]
pub struct ChunkParser {
    first_line: u64,
    line_no: u64,
    builder: EventBatchBuilder,
    lost: Vec<LostReport>,
    malformed: Vec<MalformedLine>,
    malformed_count: u64,
    last_ts: Option<i64>,
    counter_clock: bool,
}

impl ChunkParser {
    /// A parser whose first line is line `first_line` of its input.
    pub fn new(first_line: u64) -> Self {
        Self {
            first_line,
            line_no: first_line,
            builder: EventBatchBuilder::new(),
            lost: Vec::new(),
            malformed: Vec::new(),
            malformed_count: 0,
            last_ts: None,
            counter_clock: false,
        }
    }

    /// Make room for `rows` more events.
    pub fn reserve(&mut self, rows: usize) {
        self.builder.reserve(rows);
    }

    /// Events parsed and not yet taken.
    pub fn rows(&self) -> usize {
        self.builder.len()
    }

    /// Parse `block`, whole lines that start at byte `offset` of the input. Invalid UTF-8 is
    /// replaced (U+FFFD), never dropped.
    pub fn parse(&mut self, block: &[u8], offset: u64) {
        // Valid UTF-8 (the common case) is checked by the fast std validator and borrowed.
        let text: Cow<'_, str> = match std::str::from_utf8(block) {
            Ok(s) => Cow::Borrowed(s),
            Err(_) => String::from_utf8_lossy(block),
        };
        let text: &str = &text;
        let bytes = text.as_bytes();
        let mut scratch = Vec::with_capacity(16);
        let mut start = 0;
        while start < bytes.len() {
            let end = memchr::memchr(b'\n', &bytes[start..]).map_or(bytes.len(), |i| start + i);
            let line = &text[start..end];
            let mut end = end;
            match parse_line(line) {
                Line::Event(mut ev) => {
                    // A print whose message holds newlines goes on over the lines after it.
                    if let Some((joined, to, lines)) =
                        continued(text, &ev, start, end, &mut scratch)
                    {
                        ev = joined;
                        end = to;
                        self.line_no += lines;
                    }
                    self.last_ts = Some(ev.ts_ns);
                    self.counter_clock |= !ev.ts_is_ns;
                    self.builder.append(&ev, &mut scratch);
                }
                Line::Lost { cpu, count, kind } => self.lost.push(LostReport {
                    ts_ns: self.last_ts,
                    cpu,
                    count,
                    kind,
                    line: Some(self.line_no),
                }),
                Line::Ignored => {}
                Line::Malformed(reason) => {
                    self.malformed_count += 1;
                    if self.malformed.len() < MAX_MALFORMED_KEPT {
                        self.malformed.push(MalformedLine {
                            line: self.line_no,
                            offset: offset + start as u64,
                            reason,
                            text: cut(line, 200).to_owned(),
                        });
                    }
                }
            }
            self.line_no += 1;
            start = end + 1;
        }
    }

    /// The events parsed since the last call, in input order; None when there are none.
    /// Dictionaries carry over between batches.
    pub fn take_batch(&mut self) -> Result<Option<RecordBatch>, arrow::error::ArrowError> {
        if self.builder.is_empty() {
            return Ok(None);
        }
        self.builder.take_batch().map(Some)
    }

    /// What the part held besides its events, with `events` (all of them, or an empty batch
    /// when the caller kept the batches).
    pub fn finish(self, events: RecordBatch) -> ParsedChunk {
        ParsedChunk {
            events,
            lost: self.lost,
            malformed: self.malformed,
            malformed_count: self.malformed_count,
            lines: self.line_no - self.first_line,
            last_ts: self.last_ts,
            counter_clock: self.counter_clock,
        }
    }
}

/// The event `first`, parsed from `text[start..end]`, joined with the lines after it that continue its message:
/// lines that are neither events nor anything else kreq reads, after an event whose body is
/// one free-text field (`print`/`tracing_mark_write` `buf`, a lone `payload`). Returns the
/// joined event, where it ends and how many lines it took beyond the first; None when the
/// next line does not continue it. A line with a `[` in its first 64 bytes is taken for an
/// event line without parsing it, so ordinary traces pay nothing.
fn continued<'t>(
    text: &'t str,
    first: &EventLine<'t>,
    start: usize,
    end: usize,
    scratch: &mut Vec<(&'t str, &'t str)>,
) -> Option<(EventLine<'t>, usize, u64)> {
    let bytes = text.as_bytes();
    let mut to = end;
    let mut lines = 0;
    while to + 1 < bytes.len() {
        let next = to + 1;
        let window = &bytes[next..bytes.len().min(next + 64)];
        let head = memchr::memchr(b'\n', window).map_or(window, |i| &window[..i]);
        if head.is_empty() || memchr::memchr(b'[', head).is_some() {
            break;
        }
        let next_end = memchr::memchr(b'\n', &bytes[next..]).map_or(bytes.len(), |i| next + i);
        if !matches!(parse_line(&text[next..next_end]), Line::Malformed(_)) {
            break;
        }
        to = next_end;
        lines += 1;
    }
    if lines == 0 {
        return None;
    }
    let free_text = |ev: &EventLine<'t>, scratch: &mut Vec<(&'t str, &'t str)>| {
        scratch.clear();
        ev.body.fields(scratch);
        matches!(scratch.as_slice(), [("buf" | "payload", _)])
    };
    if !free_text(first, scratch) {
        return None;
    }
    let Line::Event(joined) = parse_line(&text[start..to]) else {
        return None;
    };
    free_text(&joined, scratch).then_some((joined, to, lines))
}

/// The times of an events batch (its first column); empty if it has none.
pub(crate) fn times(b: &RecordBatch) -> &[i64] {
    b.column(0)
        .as_any()
        .downcast_ref::<arrow::array::Int64Array>()
        .map_or(&[], |a| a.values())
}

/// An events batch stably sorted by time; itself, not copied, when already in order (as
/// trace_pipe output nearly always is).
pub(crate) fn sorted_by_time(b: RecordBatch) -> Result<RecordBatch, arrow::error::ArrowError> {
    match time_order(times(&b)) {
        Some(order) => arrow::compute::take_record_batch(&b, &order),
        None => Ok(b),
    }
}

/// Indices of a stable sort by time, or None when the input is already in order.
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
