//! Per-CPU pages -> one time-ordered stream of rows in the `events` schema.

use hashbrown::HashMap;

use super::comms::Comms;
use super::decode::int;
use super::format::{EventFormat, FormatRegistry, PageHeader};
use super::page::PageError;
use super::printk::KernelStrings;
pub use super::source::{CpuPages, PageRuns, SourceError};
use super::streams::{self, Streams};
use crate::batch::{EventBatchBuilder, RowHead};
use crate::rows::{Flags, IrqContext};
use crate::rows::{LostReport, ParsedChunk};

/// What the decoder needs besides the pages.
#[derive(Debug)]
pub struct DecodeContext<'a> {
    /// Page layout.
    pub page_header: PageHeader,
    /// Page size.
    pub page_size: usize,
    /// Formats by id.
    pub formats: &'a FormatRegistry,
    /// Saved command lines (tid -> comm), used until a scheduler event names the thread.
    pub cmdlines: &'a HashMap<i32, String>,
    /// Thread group ids (tid -> tgid), when known (`saved_tgids`).
    pub tgids: &'a HashMap<i32, i32>,
    /// Threads whose events are left out, with scheduler events that name them (the
    /// recorder's own threads; empty for a trace.dat). A short list: it is scanned per event.
    pub exclude: &'a [i32],
    /// `trace_printk` formats and symbols, to render `bprint`/`bputs` messages (None: kept
    /// as the raw pointer and bytes).
    pub strings: Option<&'a KernelStrings>,
    /// `sizeof(long)` on the traced machine (how `bprint` arguments are packed).
    pub long_size: usize,
    /// Added to every time decoded: 0, except in tests that need two recordings of one
    /// machine to read as two hosts whose clocks are this far apart.
    pub ts_shift_ns: i64,
}

/// Decoded rows and what was found wrong on the way.
#[derive(Debug)]
pub struct DecodedStream {
    /// Batches of at most the requested size, time-ordered across batches.
    pub chunks: Vec<ParsedChunk>,
    /// Pages that could not be decoded: `(cpu, page index, error)`.
    pub bad_pages: Vec<(u16, usize, PageError)>,
    /// Runs of pages that could not be read: `(cpu, error)`.
    pub source_errors: Vec<(u16, SourceError)>,
}

/// Decode and merge per-CPU pages by timestamp into chunks of at most `rows` rows.
pub fn decode<R: PageRuns>(cpus: &[R], ctx: &DecodeContext<'_>, rows: usize) -> DecodedStream {
    let mut decoder = Decoder::new(cpus, ctx);
    let mut chunks = Vec::new();
    while let Some(chunk) = decoder.next_chunk(rows) {
        chunks.push(chunk);
    }
    DecodedStream {
        chunks,
        source_errors: decoder.source_errors(),
        bad_pages: decoder.bad_pages,
    }
}

/// Per-CPU pages merged by timestamp and decoded a chunk at a time, so that a writer can take
/// each chunk while the next is decoded and memory stays bounded by the chunk size.
pub struct Decoder<'a> {
    cpus: Vec<u16>,
    ctx: &'a DecodeContext<'a>,
    streams: Streams<'a>,
    comms: Comms<'a>,
    lost: std::iter::Peekable<std::vec::IntoIter<LostReport>>,
    builder: EventBatchBuilder,
    last_ts: Option<i64>,
    /// Pages that could not be decoded: `(cpu, page index, error)`.
    pub bad_pages: Vec<(u16, usize, PageError)>,
    /// Events left out because of [`DecodeContext::exclude`].
    pub excluded: u64,
    /// Runs the first pass could not read: `(cpu, error)`.
    scan_errors: Vec<(u16, SourceError)>,
}

impl std::fmt::Debug for Decoder<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoder")
            .field("cpus", &self.streams.len())
            .field("bad_pages", &self.bad_pages.len())
            .finish_non_exhaustive()
    }
}

impl<'a> Decoder<'a> {
    /// Check every CPU's pages (finding lost-event marks and bad pages) and set up the merge.
    pub fn new<R: PageRuns>(cpus: &'a [R], ctx: &'a DecodeContext<'a>) -> Self {
        let mut bad_pages = Vec::new();
        let mut scan_errors = Vec::new();
        let mut lost = Vec::new();
        let mut in_order = Vec::with_capacity(cpus.len());
        let size = ctx.page_size.max(1);
        for c in cpus {
            match streams::scan(c, size, &ctx.page_header) {
                Ok(s) => {
                    lost.extend(s.lost);
                    bad_pages.extend(s.bad.into_iter().map(|(n, e)| (c.cpu(), n, e)));
                    in_order.push(s.in_order);
                }
                Err(e) => {
                    scan_errors.push((c.cpu(), e));
                    in_order.push(true);
                }
            }
        }
        for l in &mut lost {
            l.ts_ns = l.ts_ns.map(|t| t + ctx.ts_shift_ns);
        }
        lost.sort_by_key(|l| l.ts_ns);
        Self {
            cpus: cpus.iter().map(|c| c.cpu()).collect(),
            ctx,
            streams: Streams::new(cpus, &in_order, ctx.page_header, size),
            comms: Comms::new(ctx.cmdlines),
            lost: lost.into_iter().peekable(),
            builder: EventBatchBuilder::new(),
            last_ts: None,
            bad_pages,
            excluded: 0,
            scan_errors,
        }
    }

    /// Runs of pages that could not be read, by the first pass or while decoding: `(cpu,
    /// error)`. A decoder with any has left out the rest of those CPUs' pages.
    pub fn source_errors(&self) -> Vec<(u16, SourceError)> {
        let streamed = self.streams.errors.iter();
        (self.scan_errors.iter().cloned())
            .chain(streamed.map(|(i, e)| (self.cpus[*i], e.clone())))
            .collect()
    }

    /// The next (at most) `rows` events in time order, with the lost-event reports up to the
    /// last of them (all that remain, in the last chunk); None when nothing is left.
    pub fn next_chunk(&mut self, rows: usize) -> Option<ParsedChunk> {
        let mut chunk_lost = Vec::new();
        self.builder.reserve(rows.min(1 << 16));
        while self.builder.len() < rows {
            let Some((i, raw_ts, rec)) = self.streams.next() else {
                chunk_lost.extend(self.lost.by_ref());
                break;
            };
            // Times are below 2^63 ns (`page::next_record` refuses others).
            let ts = raw_ts as i64 + self.ctx.ts_shift_ns;
            while self
                .lost
                .peek()
                .is_some_and(|l: &LostReport| l.ts_ns.is_none_or(|t| t <= ts))
            {
                chunk_lost.extend(self.lost.next());
            }
            // A record too short for the common header is skipped.
            if let Some(h) = Head::of(rec, self.ctx.formats) {
                if !self.ctx.exclude.is_empty() && excluded(&mut self.comms, self.ctx, &h, rec) {
                    self.excluded += 1;
                    continue;
                }
                let cpu = self.cpus[i];
                append(
                    &mut self.builder,
                    &mut self.comms,
                    self.ctx,
                    cpu,
                    ts,
                    &h,
                    rec,
                );
            }
            self.last_ts = Some(ts);
        }
        if self.builder.is_empty() && chunk_lost.is_empty() {
            return None;
        }
        let events = self.builder.take_batch().unwrap_or_else(|_| {
            arrow::record_batch::RecordBatch::new_empty(kreq_schemas::events::schema())
        });
        Some(ParsedChunk {
            events,
            lost: chunk_lost,
            malformed: Vec::new(),
            malformed_count: 0,
            lines: 0,
            last_ts: self.last_ts,
            counter_clock: false,
        })
    }
}

/// Flags from `common_flags` and `common_preempt_count`.
fn flags(f: u8, pc: u8) -> Flags {
    let (nmi, hard, soft) = (f & 0x40 != 0, f & 0x08 != 0, f & 0x10 != 0);
    Flags {
        irqs_off: f & 0x01 != 0,
        bh_off: f & 0x80 != 0,
        need_resched: f & (0x02 | 0x04 | 0x20) != 0,
        context: match (nmi, hard, soft) {
            (true, true, _) => IrqContext::NmiInHardirq,
            (true, false, _) => IrqContext::Nmi,
            (false, true, true) => IrqContext::HardirqInSoftirq,
            (false, true, false) => IrqContext::Hardirq,
            (false, false, true) => IrqContext::Softirq,
            _ => IrqContext::Task,
        },
        preempt_depth: pc & 0xf,
        migrate_disable: Some(pc >> 4),
    }
}

/// A record's common header (format id, flags, thread id) and its format, read once per record.
struct Head<'f> {
    id: u16,
    flags: Flags,
    tid: i32,
    format: Option<&'f EventFormat>,
}

impl<'f> Head<'f> {
    /// None when the record is too short to hold the common header.
    fn of(rec: &[u8], formats: &'f FormatRegistry) -> Option<Self> {
        let h = rec.get(..8)?;
        let id = u16::from_le_bytes([h[0], h[1]]);
        Some(Self {
            id,
            flags: flags(h[2], h[3]),
            tid: i32::from_le_bytes([h[4], h[5], h[6], h[7]]),
            format: formats.get(id),
        })
    }
}

fn append(
    b: &mut EventBatchBuilder,
    comms: &mut Comms<'_>,
    ctx: &DecodeContext<'_>,
    cpu: u16,
    ts: i64,
    h: &Head<'_>,
    rec: &[u8],
) {
    let row = RowHead {
        ts_ns: ts,
        cpu,
        tid: h.tid,
        tgid: ctx.tgids.get(&h.tid).copied(),
        comm: comms.get(h.tid),
        flags: Some(h.flags),
    };
    match h.format {
        Some(f) => {
            b.append_binary(&row, f, rec, ctx.strings.map(|s| (s, ctx.long_size)));
            comms.learn(f, rec);
        }
        None => b.append_binary(&row, &unknown_format(h.id), rec, None),
    }
}

/// Whether `rec` was recorded by one of the excluded threads or is a scheduler event that
/// names one (switched from or to, woken, forked).
fn excluded(comms: &mut Comms<'_>, ctx: &DecodeContext<'_>, h: &Head<'_>, rec: &[u8]) -> bool {
    if ctx.exclude.contains(&h.tid) {
        return true;
    }
    let Some(f) = h.format else {
        return false;
    };
    comms.plan(f).iter().any(|&(pid_at, _)| {
        int(rec, &f.fields[pid_at])
            .and_then(|p| i32::try_from(p).ok())
            .is_some_and(|p| p != 0 && ctx.exclude.contains(&p))
    })
}

fn unknown_format(id: u16) -> EventFormat {
    EventFormat {
        system: String::new(),
        name: format!("unknown_event_{id}"),
        id,
        fields: Vec::new(),
        print_fmt: String::new(),
    }
}
