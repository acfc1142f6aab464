//! Per-CPU pages -> one time-ordered stream of rows in the `events` schema.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use hashbrown::HashMap;

use super::comms::Comms;
use super::decode::int;
use super::format::{EventFormat, FormatRegistry, PageHeader};
use super::page::{Missed, Page, PageError};
use crate::batch::{EventBatchBuilder, RowHead};
use crate::chunk::{LostReport, ParsedChunk};
use crate::line::{Flags, IrqContext, LostKind};

/// One CPU's ring-buffer pages, in time order: runs of whole `page_size` pages, so that a
/// recorder can hand over the buffers it read into without copying them together.
#[derive(Debug, Clone)]
pub struct CpuPages<'a> {
    /// CPU number.
    pub cpu: u16,
    /// The pages, `page_size` bytes each, concatenated within each run.
    pub runs: Vec<&'a [u8]>,
}

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
}

/// Decoded rows and what was found wrong on the way.
#[derive(Debug)]
pub struct DecodedStream {
    /// Batches of at most the requested size, time-ordered across batches.
    pub chunks: Vec<ParsedChunk>,
    /// Pages that could not be decoded: `(cpu, page index, error)`.
    pub bad_pages: Vec<(u16, usize, PageError)>,
}

/// One record: its time and where it lies (page index, byte range within the page).
struct Rec {
    ts: u64,
    page: u32,
    start: u32,
    len: u32,
}

/// Decode and merge per-CPU pages by timestamp into chunks of at most `rows` rows.
pub fn decode(cpus: &[CpuPages<'_>], ctx: &DecodeContext<'_>, rows: usize) -> DecodedStream {
    let mut decoder = Decoder::new(cpus, ctx);
    let mut chunks = Vec::new();
    while let Some(chunk) = decoder.next_chunk(rows) {
        chunks.push(chunk);
    }
    DecodedStream {
        chunks,
        bad_pages: decoder.bad_pages,
    }
}

/// Per-CPU pages merged by timestamp and decoded a chunk at a time, so that a writer can take
/// each chunk while the next is decoded and memory stays bounded by the chunk size.
pub struct Decoder<'a> {
    cpus: Vec<u16>,
    /// Every CPU's pages, one slice per page.
    pages: Vec<Vec<&'a [u8]>>,
    ctx: &'a DecodeContext<'a>,
    per_cpu: Vec<Vec<Rec>>,
    order: Merge,
    comms: Comms<'a>,
    lost: std::iter::Peekable<std::vec::IntoIter<LostReport>>,
    builder: EventBatchBuilder,
    last_ts: Option<i64>,
    /// Pages that could not be decoded: `(cpu, page index, error)`.
    pub bad_pages: Vec<(u16, usize, PageError)>,
    /// Events left out because of [`DecodeContext::exclude`].
    pub excluded: u64,
}

impl std::fmt::Debug for Decoder<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoder")
            .field("cpus", &self.per_cpu.len())
            .field("bad_pages", &self.bad_pages.len())
            .finish_non_exhaustive()
    }
}

impl<'a> Decoder<'a> {
    /// Index every CPU's pages (finding lost-event marks and bad pages) and set up the merge.
    pub fn new(cpus: &[CpuPages<'a>], ctx: &'a DecodeContext<'a>) -> Self {
        let mut bad_pages = Vec::new();
        let mut lost = Vec::new();
        let size = ctx.page_size.max(1);
        let pages: Vec<Vec<&'a [u8]>> = cpus
            .iter()
            .map(|c| c.runs.iter().flat_map(|r| r.chunks(size)).collect())
            .collect();
        let per_cpu: Vec<Vec<Rec>> = cpus
            .iter()
            .zip(&pages)
            .map(|(c, p)| index_cpu(c.cpu, p, ctx, &mut lost, &mut bad_pages))
            .collect();
        lost.sort_by_key(|l| l.ts_ns);
        Self {
            cpus: cpus.iter().map(|c| c.cpu).collect(),
            pages,
            ctx,
            order: Merge::new(&per_cpu),
            per_cpu,
            comms: Comms::new(ctx.cmdlines),
            lost: lost.into_iter().peekable(),
            builder: EventBatchBuilder::new(),
            last_ts: None,
            bad_pages,
            excluded: 0,
        }
    }

    /// The next (at most) `rows` events in time order, with the lost-event reports up to the
    /// last of them (all that remain, in the last chunk); None when nothing is left.
    pub fn next_chunk(&mut self, rows: usize) -> Option<ParsedChunk> {
        let mut chunk_lost = Vec::new();
        self.builder.reserve(rows.min(1 << 16));
        while self.builder.len() < rows {
            let Some((i, k)) = self.order.next(&self.per_cpu) else {
                chunk_lost.extend(self.lost.by_ref());
                break;
            };
            let r = &self.per_cpu[i][k];
            let ts = r.ts;
            while self
                .lost
                .peek()
                .is_some_and(|l: &LostReport| l.ts_ns.is_none_or(|t| t <= ts as i64))
            {
                chunk_lost.extend(self.lost.next());
            }
            let page = self.pages[i][r.page as usize];
            let rec = &page[r.start as usize..(r.start + r.len) as usize];
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
            self.last_ts = Some(ts as i64);
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

/// K-way merge of per-CPU streams by time: a linear scan of the heads for a few CPUs (cheaper
/// than a heap there), a binary heap beyond.
enum Merge {
    Scan(Vec<usize>),
    Heap(BinaryHeap<Reverse<(u64, usize, usize)>>),
}

impl Merge {
    const SCAN_MAX: usize = 8;

    fn new(per_cpu: &[Vec<Rec>]) -> Self {
        if per_cpu.len() <= Self::SCAN_MAX {
            return Merge::Scan(vec![0; per_cpu.len()]);
        }
        Merge::Heap(
            per_cpu
                .iter()
                .enumerate()
                .filter_map(|(i, recs)| recs.first().map(|r| Reverse((r.ts, i, 0))))
                .collect(),
        )
    }

    /// Next `(cpu index, record index)` in time order (ties: lower CPU index first).
    fn next(&mut self, per_cpu: &[Vec<Rec>]) -> Option<(usize, usize)> {
        match self {
            Merge::Scan(pos) => {
                let mut best: Option<(u64, usize)> = None;
                for (i, recs) in per_cpu.iter().enumerate() {
                    if let Some(r) = recs.get(pos[i]) {
                        if best.is_none_or(|(t, _)| r.ts < t) {
                            best = Some((r.ts, i));
                        }
                    }
                }
                let (_, i) = best?;
                pos[i] += 1;
                Some((i, pos[i] - 1))
            }
            Merge::Heap(heap) => {
                let Reverse((_, i, k)) = heap.pop()?;
                if let Some(next) = per_cpu[i].get(k + 1) {
                    heap.push(Reverse((next.ts, i, k + 1)));
                }
                Some((i, k))
            }
        }
    }
}

fn index_cpu(
    cpu: u16,
    pages: &[&[u8]],
    ctx: &DecodeContext<'_>,
    lost: &mut Vec<LostReport>,
    bad: &mut Vec<(u16, usize, PageError)>,
) -> Vec<Rec> {
    // Records average well over 32 bytes with their headers.
    let mut out = Vec::with_capacity(pages.len() * ctx.page_size / 32);
    for (n, &page) in pages.iter().enumerate() {
        let p = match Page::parse(page, &ctx.page_header) {
            Ok(p) => p,
            Err(e) => {
                bad.push((cpu, n, e));
                continue;
            }
        };
        if p.missed != Missed::None {
            lost.push(LostReport {
                ts_ns: Some(p.base_ts as i64),
                cpu,
                count: match p.missed {
                    Missed::Count(n) => Some(n),
                    _ => None,
                },
                kind: LostKind::Missed,
                line: None,
            });
        }
        let data_start = page.as_ptr() as usize;
        for r in p.records() {
            match r {
                Ok((ts, rec)) => out.push(Rec {
                    ts,
                    page: n as u32,
                    start: (rec.as_ptr() as usize - data_start) as u32,
                    len: rec.len() as u32,
                }),
                Err(e) => {
                    bad.push((cpu, n, e));
                    break;
                }
            }
        }
    }
    // Each CPU's stream is in time order already; sort defensively (stable) in case of
    // clock jumps between pages.
    out.sort_by_key(|r| r.ts);
    out
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
    ts: u64,
    h: &Head<'_>,
    rec: &[u8],
) {
    let row = RowHead {
        ts_ns: ts as i64,
        cpu,
        tid: h.tid,
        tgid: ctx.tgids.get(&h.tid).copied(),
        comm: comms.get(h.tid),
        flags: Some(h.flags),
    };
    match h.format {
        Some(f) => {
            b.append_binary(&row, f, rec);
            comms.learn(f, rec);
        }
        None => b.append_binary(&row, &unknown_format(h.id), rec),
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
