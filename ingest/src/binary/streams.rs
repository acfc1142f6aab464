//! Each CPU's records in time order, merged across CPUs by timestamp.
//!
//! A first pass over every page finds lost-event marks and bad pages and checks that the CPU's
//! times never go back. Such a CPU (all of them, in practice) is then read run by run while
//! merging: only the run that holds the CPU's next record is in memory, so a trace.dat whose
//! pages are decompressed as the merge reaches them is decoded in memory flat in its size. A CPU
//! whose times do go back (a clock jump between pages) is read whole, indexed and sorted
//! (stable).

use std::borrow::Cow;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::ops::Range;

use super::format::PageHeader;
use super::page::{next_record, Missed, Page, PageError};
use super::source::{PageRuns, Run, SourceError};
use crate::rows::LostKind;
use crate::rows::LostReport;

/// One record of an indexed CPU: its time and where it lies in the CPU's data.
struct Rec {
    ts: u64,
    start: usize,
    len: usize,
}

/// Where the next record of the current page is: the page's event data as a byte range of
/// the run, the read position in it, and the time so far.
struct PageCursor {
    data: Range<usize>,
    pos: usize,
    ts: u64,
}

/// One CPU's records in time order.
enum CpuStream<'a> {
    /// Read run by run, page by page (the CPU's times never go back).
    Pages {
        runs: Box<dyn Iterator<Item = Run<'a>> + 'a>,
        run: Cow<'a, [u8]>,
        next_page: usize,
        page: Option<PageCursor>,
    },
    /// Read whole, indexed and sorted.
    Indexed {
        data: Vec<u8>,
        recs: Vec<Rec>,
        next: usize,
    },
}

impl<'a> CpuStream<'a> {
    /// The next record, `(time, byte range in [`Self::bytes`])`; records after an error in a
    /// page are skipped, as are bad pages (both reported by [`scan`]). A run that cannot be read
    /// ends the stream and is returned as the error.
    fn next(
        &mut self,
        header: &PageHeader,
        size: usize,
    ) -> Result<Option<(u64, Range<usize>)>, SourceError> {
        match self {
            CpuStream::Pages {
                runs,
                run,
                next_page,
                page,
            } => loop {
                if let Some(p) = page {
                    let data = &run[p.data.clone()];
                    match next_record(data, &mut p.pos, &mut p.ts) {
                        Some(Ok((ts, r))) => {
                            let base = p.data.start;
                            return Ok(Some((ts, base + r.start..base + r.end)));
                        }
                        Some(Err(_)) | None => *page = None,
                    }
                }
                if *next_page >= run.len() {
                    match runs.next() {
                        None => return Ok(None),
                        Some(r) => {
                            *run = r?;
                            *next_page = 0;
                            continue;
                        }
                    }
                }
                let start = *next_page;
                let end = (start + size).min(run.len());
                *next_page = end;
                *page = Page::parse(&run[start..end], header)
                    .ok()
                    .map(|p| PageCursor {
                        data: start + header.data_offset..start + header.data_offset + p.data_len,
                        pos: 0,
                        ts: p.base_ts,
                    });
            },
            CpuStream::Indexed { recs, next, .. } => {
                let Some(r) = recs.get(*next) else {
                    return Ok(None);
                };
                *next += 1;
                Ok(Some((r.ts, r.start..r.start + r.len)))
            }
        }
    }

    /// The bytes the ranges [`Self::next`] returns point into.
    fn bytes(&self) -> &[u8] {
        match self {
            CpuStream::Pages { run, .. } => run,
            CpuStream::Indexed { data, .. } => data,
        }
    }
}

/// Every CPU's stream, merged by time.
pub(super) struct Streams<'a> {
    header: PageHeader,
    page_size: usize,
    cpus: Vec<CpuStream<'a>>,
    /// Each CPU's next record, read ahead: its time and bytes in the CPU's current run.
    heads: Vec<Option<(u64, Range<usize>)>>,
    /// The CPU whose head was handed out last; it moves on at the next call, so that the
    /// bytes handed out stay in memory until then.
    taken: Option<usize>,
    /// For many CPUs: `(time, cpu index)` of every head.
    heap: Option<BinaryHeap<Reverse<(u64, usize)>>>,
    /// Runs that could not be read while merging: `(cpu index, error)`.
    pub(super) errors: Vec<(usize, SourceError)>,
}

/// What the first pass found in one CPU's pages.
pub(super) struct Scan {
    /// Missed-events marks, as lost-event reports.
    pub(super) lost: Vec<LostReport>,
    /// Bad pages: `(page index, error)`.
    pub(super) bad: Vec<(usize, PageError)>,
    /// The CPU's times never go back.
    pub(super) in_order: bool,
}

/// First pass over one CPU's pages, read run by run; the error of a run that cannot be read.
pub(super) fn scan<R: PageRuns + ?Sized>(
    src: &R,
    size: usize,
    header: &PageHeader,
) -> Result<Scan, SourceError> {
    let cpu = src.cpu();
    let mut s = Scan {
        lost: Vec::new(),
        bad: Vec::new(),
        in_order: true,
    };
    let mut last = 0;
    let mut n = 0;
    for run in src.runs() {
        for page in run?.chunks(size) {
            scan_page(cpu, n, page, header, &mut s, &mut last);
            n += 1;
        }
    }
    Ok(s)
}

fn scan_page(cpu: u16, n: usize, page: &[u8], header: &PageHeader, s: &mut Scan, last: &mut u64) {
    let p = match Page::parse(page, header) {
        Ok(p) => p,
        Err(e) => {
            s.bad.push((n, e));
            return;
        }
    };
    if p.missed != Missed::None {
        s.lost.push(LostReport {
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
    for r in p.records() {
        match r {
            Ok((ts, _)) => {
                s.in_order &= ts >= *last;
                *last = ts;
            }
            Err(e) => {
                s.bad.push((n, e));
                break;
            }
        }
    }
}

/// Index every record of one CPU's data, sorted by time (stable).
fn index(data: &[u8], size: usize, header: &PageHeader) -> Vec<Rec> {
    let mut out = Vec::new();
    for (n, page) in data.chunks(size).enumerate() {
        let Ok(p) = Page::parse(page, header) else {
            continue;
        };
        for r in p.records() {
            let Ok((ts, rec)) = r else { break };
            out.push(Rec {
                ts,
                start: n * size + (rec.as_ptr() as usize - page.as_ptr() as usize),
                len: rec.len(),
            });
        }
    }
    out.sort_by_key(|r| r.ts);
    out
}

impl<'a> Streams<'a> {
    /// Above this many CPUs the heads are kept in a heap; below, a scan is cheaper.
    const SCAN_MAX: usize = 8;

    /// Streams over each CPU's pages; `in_order[i]` is [`Scan::in_order`] of CPU `i`.
    pub(super) fn new<R: PageRuns>(
        cpus: &'a [R],
        in_order: &[bool],
        header: PageHeader,
        page_size: usize,
    ) -> Self {
        let mut errors = Vec::new();
        let mut streams: Vec<CpuStream<'a>> = Vec::with_capacity(cpus.len());
        for (i, (src, &ok)) in cpus.iter().zip(in_order).enumerate() {
            let runs = src.runs();
            if ok {
                streams.push(CpuStream::Pages {
                    runs,
                    run: Cow::Borrowed(&[]),
                    next_page: 0,
                    page: None,
                });
                continue;
            }
            let mut data = Vec::new();
            for run in runs {
                match run {
                    Ok(r) => data.extend_from_slice(&r),
                    Err(e) => {
                        errors.push((i, e));
                        break;
                    }
                }
            }
            let recs = index(&data, page_size, &header);
            streams.push(CpuStream::Indexed {
                data,
                recs,
                next: 0,
            });
        }
        let mut heads = Vec::with_capacity(streams.len());
        for (i, c) in streams.iter_mut().enumerate() {
            heads.push(c.next(&header, page_size).unwrap_or_else(|e| {
                errors.push((i, e));
                None
            }));
        }
        let heap = (streams.len() > Self::SCAN_MAX).then(|| {
            heads
                .iter()
                .enumerate()
                .filter_map(|(i, h)| h.as_ref().map(|(ts, _)| Reverse((*ts, i))))
                .collect()
        });
        Self {
            header,
            page_size,
            cpus: streams,
            heads,
            taken: None,
            heap,
            errors,
        }
    }

    /// The next record in time order, `(cpu index, time, bytes)`; ties go to the lower CPU
    /// index.
    pub(super) fn next(&mut self) -> Option<(usize, u64, &[u8])> {
        if let Some(i) = self.taken.take() {
            self.heads[i] = self.cpus[i]
                .next(&self.header, self.page_size)
                .unwrap_or_else(|e| {
                    self.errors.push((i, e));
                    None
                });
            if let (Some(heap), Some((t, _))) = (&mut self.heap, &self.heads[i]) {
                heap.push(Reverse((*t, i)));
            }
        }
        let i = match &mut self.heap {
            None => {
                let mut best: Option<(u64, usize)> = None;
                for (i, h) in self.heads.iter().enumerate() {
                    if let Some((ts, _)) = h {
                        if best.is_none_or(|(t, _)| *ts < t) {
                            best = Some((*ts, i));
                        }
                    }
                }
                best?.1
            }
            Some(heap) => heap.pop()?.0 .1,
        };
        let (ts, range) = self.heads[i].clone()?;
        self.taken = Some(i);
        Some((i, ts, &self.cpus[i].bytes()[range]))
    }

    /// Number of CPUs.
    pub(super) fn len(&self) -> usize {
        self.cpus.len()
    }
}
