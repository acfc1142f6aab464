//! Each CPU's records in time order, merged across CPUs by timestamp.
//!
//! A first pass over every page finds lost-event marks and bad pages and checks that the CPU's
//! times never go back. Such a CPU (all of them, in practice) is then read page by page while
//! merging, so decoding holds no per-record index. A CPU whose times do go back (a clock jump
//! between pages) is indexed and sorted instead (stable), as before.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::format::PageHeader;
use super::page::{Missed, Page, PageError, Records};
use crate::rows::LostKind;
use crate::rows::LostReport;

/// One record of an indexed CPU: its time and where it lies.
struct Rec {
    ts: u64,
    page: u32,
    start: u32,
    len: u32,
}

/// One CPU's records in time order.
enum CpuStream<'a> {
    /// Read page by page (the CPU's times never go back).
    Pages {
        pages: Vec<&'a [u8]>,
        next_page: usize,
        records: Option<Records<'a>>,
    },
    /// Indexed and sorted.
    Indexed {
        pages: Vec<&'a [u8]>,
        recs: Vec<Rec>,
        next: usize,
    },
}

impl<'a> CpuStream<'a> {
    /// The next record, `(time, bytes)`; records after an error in a page are skipped, as are
    /// bad pages (both reported by [`scan`]).
    fn next(&mut self, header: &PageHeader) -> Option<(u64, &'a [u8])> {
        match self {
            CpuStream::Pages {
                pages,
                next_page,
                records,
            } => loop {
                if let Some(r) = records {
                    match r.next() {
                        Some(Ok(rec)) => return Some(rec),
                        Some(Err(_)) | None => *records = None,
                    }
                }
                let page = *pages.get(*next_page)?;
                *next_page += 1;
                *records = Page::parse(page, header).ok().map(|p| p.records());
            },
            CpuStream::Indexed { pages, recs, next } => {
                let r = recs.get(*next)?;
                *next += 1;
                let page = pages[r.page as usize];
                Some((r.ts, &page[r.start as usize..(r.start + r.len) as usize]))
            }
        }
    }
}

/// Every CPU's stream, merged by time.
pub(super) struct Streams<'a> {
    header: PageHeader,
    cpus: Vec<CpuStream<'a>>,
    /// Each CPU's next record, read ahead.
    heads: Vec<Option<(u64, &'a [u8])>>,
    /// For many CPUs: `(time, cpu index)` of every head.
    heap: Option<BinaryHeap<Reverse<(u64, usize)>>>,
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

/// First pass over one CPU's pages.
pub(super) fn scan(cpu: u16, pages: &[&[u8]], header: &PageHeader) -> Scan {
    let mut s = Scan {
        lost: Vec::new(),
        bad: Vec::new(),
        in_order: true,
    };
    let mut last = 0;
    for (n, &page) in pages.iter().enumerate() {
        let p = match Page::parse(page, header) {
            Ok(p) => p,
            Err(e) => {
                s.bad.push((n, e));
                continue;
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
                    s.in_order &= ts >= last;
                    last = ts;
                }
                Err(e) => {
                    s.bad.push((n, e));
                    break;
                }
            }
        }
    }
    s
}

/// Index every record of one CPU, sorted by time (stable).
fn index(pages: &[&[u8]], header: &PageHeader) -> Vec<Rec> {
    let mut out = Vec::new();
    for (n, &page) in pages.iter().enumerate() {
        let Ok(p) = Page::parse(page, header) else {
            continue;
        };
        let data_start = page.as_ptr() as usize;
        for r in p.records() {
            let Ok((ts, rec)) = r else { break };
            out.push(Rec {
                ts,
                page: n as u32,
                start: (rec.as_ptr() as usize - data_start) as u32,
                len: rec.len() as u32,
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
    pub(super) fn new(pages: Vec<Vec<&'a [u8]>>, in_order: &[bool], header: PageHeader) -> Self {
        let mut cpus: Vec<CpuStream<'a>> = pages
            .into_iter()
            .zip(in_order)
            .map(|(pages, &ok)| {
                if ok {
                    CpuStream::Pages {
                        pages,
                        next_page: 0,
                        records: None,
                    }
                } else {
                    let recs = index(&pages, &header);
                    CpuStream::Indexed {
                        pages,
                        recs,
                        next: 0,
                    }
                }
            })
            .collect();
        let heads: Vec<_> = cpus.iter_mut().map(|c| c.next(&header)).collect();
        let heap = (cpus.len() > Self::SCAN_MAX).then(|| {
            heads
                .iter()
                .enumerate()
                .filter_map(|(i, h)| h.map(|(ts, _)| Reverse((ts, i))))
                .collect()
        });
        Self {
            header,
            cpus,
            heads,
            heap,
        }
    }

    /// The next record in time order, `(cpu index, time, bytes)`; ties go to the lower CPU
    /// index.
    pub(super) fn next(&mut self) -> Option<(usize, u64, &'a [u8])> {
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
        let (ts, rec) = self.heads[i]?;
        self.heads[i] = self.cpus[i].next(&self.header);
        if let (Some(heap), Some((t, _))) = (&mut self.heap, self.heads[i]) {
            heap.push(Reverse((t, i)));
        }
        Some((i, ts, rec))
    }

    /// Number of CPUs.
    pub(super) fn len(&self) -> usize {
        self.cpus.len()
    }
}
