//! Writing correlation results: `spans`, `requests` and `edges` parts, and events parts
//! rewritten with their `request_id` / `span_id` labels.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, Float32Array, Int32Array, Int64Array, ListBuilder, RecordBatch,
    StringBuilder, StringDictionaryBuilder, UInt16Array, UInt32Array, UInt64Array,
};
use arrow::datatypes::Int32Type;
use kreq_schemas::{dataset, edges, requests, spans, writer};

use crate::model::{Finished, SpanKind};
use crate::{Error, Interner, Result};

type Dict = StringDictionaryBuilder<Int32Type>;

/// Writes one table as numbered part files, each complete before it is renamed into place.
#[derive(Debug)]
pub(crate) struct PartWriter {
    dataset: PathBuf,
    table: &'static str,
    seq: u64,
}

impl PartWriter {
    /// Starts the table afresh: its directory's old parts are removed.
    pub(crate) fn new(dataset: &Path, table: &'static str) -> Result<Self> {
        let dir = dataset.join(table);
        let io = |source| Error::Io {
            path: dir.clone(),
            source,
        };
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(io)?;
        }
        std::fs::create_dir_all(&dir).map_err(io)?;
        Ok(PartWriter {
            dataset: dataset.to_owned(),
            table,
            seq: 0,
        })
    }

    pub(crate) fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        let path = dataset::part_path(&self.dataset, self.table, self.seq);
        self.seq += 1;
        write_file(&path, self.table, batch.schema(), [Ok(batch.clone())], &[])
    }
}

/// Writes `batches` to `path` as a part of `table`, valid whenever visible
/// ([`writer::write_parquet`]).
pub(crate) fn write_file(
    path: &Path,
    table: &str,
    schema: arrow::datatypes::SchemaRef,
    batches: impl IntoIterator<Item = Result<RecordBatch>>,
    meta: &[(String, String)],
) -> Result<()> {
    let level = writer::DEFAULT_ZSTD_LEVEL;
    match writer::write_parquet(path, table, schema, batches, level, meta) {
        Ok(_) => Ok(()),
        Err(writer::WriteError::Io(source)) => Err(Error::Io {
            path: path.to_owned(),
            source,
        }),
        Err(writer::WriteError::Parquet(source)) => Err(Error::Parquet {
            path: path.to_owned(),
            source,
        }),
        Err(writer::WriteError::Batch(e)) => Err(e),
    }
}

/// Rows of the three result tables, built from finished requests.
#[derive(Debug, Default)]
pub(crate) struct ResultRows {
    pub(crate) finished: Vec<Finished>,
    pub(crate) complete: Vec<bool>,
    pub(crate) spans: usize,
}

fn dict_opt(b: &mut Dict, v: Option<&str>) {
    match v {
        Some(s) => {
            b.append_value(s);
        }
        None => b.append_null(),
    }
}

impl ResultRows {
    pub(crate) fn push(&mut self, f: Finished, complete: bool) {
        self.spans += f.spans.len();
        self.finished.push(f);
        self.complete.push(complete);
    }

    pub(crate) fn len(&self) -> usize {
        self.finished.len()
    }

    /// Builds the `requests`, `spans` and `edges` batches and clears the rows.
    pub(crate) fn take(&mut self, names: &Interner) -> Result<[RecordBatch; 3]> {
        let fin = std::mem::take(&mut self.finished);
        let complete = std::mem::take(&mut self.complete);
        self.spans = 0;
        let arrow = |source| Error::Arrow {
            path: PathBuf::from("(correlation results)"),
            source,
        };
        let all: Vec<_> = fin.iter().flat_map(|f| f.spans.iter()).collect();
        let splits: Vec<_> = all.iter().map(|s| s.split()).collect();
        let selfs = self_times(&fin, &splits);
        let critical = critical_spans(&fin, &selfs);
        // requests
        let mut caddr = Dict::new();
        let mut saddr = Dict::new();
        let mut services = ListBuilder::new(StringBuilder::new());
        let mut min_conf = Vec::with_capacity(fin.len());
        for f in &fin {
            let r = &f.request;
            caddr.append_value(names.name(r.ingress.remote.addr));
            saddr.append_value(names.name(r.ingress.local.addr));
            let mut seen: Vec<u32> = Vec::new();
            for s in &f.spans {
                if !seen.contains(&s.comm) {
                    seen.push(s.comm);
                    services.values().append_value(names.name(s.comm));
                }
            }
            services.append(true);
            min_conf.push(r.edges.iter().map(|e| e.confidence).fold(1.0f32, f32::min));
        }
        let reqs: Vec<ArrayRef> = vec![
            Arc::new(UInt64Array::from_iter_values(
                fin.iter().map(|f| f.request.id),
            )),
            Arc::new(UInt64Array::from_iter_values(
                fin.iter().map(|f| f.request.root),
            )),
            Arc::new(caddr.finish()),
            Arc::new(UInt16Array::from_iter_values(
                fin.iter().map(|f| f.request.ingress.remote.port),
            )),
            Arc::new(saddr.finish()),
            Arc::new(UInt16Array::from_iter_values(
                fin.iter().map(|f| f.request.ingress.local.port),
            )),
            Arc::new(Int32Array::from_iter(
                fin.iter().map(|f| f.request.client_tid),
            )),
            Arc::new(Int32Array::from_iter_values(
                fin.iter().map(|f| f.request.ingress_tid),
            )),
            Arc::new(Int64Array::from_iter_values(
                fin.iter().map(|f| f.request.start),
            )),
            Arc::new(Int64Array::from_iter_values(
                fin.iter().map(|f| f.request.end),
            )),
            Arc::new(Int64Array::from_iter_values(
                fin.iter().map(|f| f.request.end - f.request.start),
            )),
            Arc::new(BooleanArray::from_iter(
                fin.iter().map(|f| Some(f.request.responded)),
            )),
            Arc::new(services.finish()),
            Arc::new(UInt32Array::from_iter_values(
                fin.iter().map(|f| f.spans.len() as u32),
            )),
            Arc::new(Float32Array::from(min_conf)),
            Arc::new(BooleanArray::from_iter(complete.iter().map(|&c| Some(c)))),
            Arc::new(UInt64Array::from(critical)),
        ];
        let reqs = RecordBatch::try_new(requests::schema(), reqs).map_err(arrow)?;
        // spans
        let mut kind = Dict::new();
        let mut comm = Dict::new();
        let mut laddr = Dict::new();
        let mut paddr = Dict::new();
        for s in &all {
            kind.append_value(s.kind.as_str());
            comm.append_value(names.name(s.comm));
            dict_opt(&mut laddr, s.tuple.map(|t| names.name(t.local.addr)));
            dict_opt(&mut paddr, s.tuple.map(|t| names.name(t.remote.addr)));
        }
        let i64s = |f: &dyn Fn(usize) -> i64| -> ArrayRef {
            Arc::new(Int64Array::from_iter_values((0..all.len()).map(f)))
        };
        let cols: Vec<ArrayRef> = vec![
            Arc::new(UInt64Array::from_iter_values(all.iter().map(|s| s.request))),
            Arc::new(UInt64Array::from_iter_values(all.iter().map(|s| s.id))),
            Arc::new(UInt64Array::from_iter(all.iter().map(|s| s.parent))),
            Arc::new(kind.finish()),
            Arc::new(Int32Array::from_iter_values(all.iter().map(|s| s.tid))),
            Arc::new(Int32Array::from_iter(all.iter().map(|s| s.pid))),
            Arc::new(comm.finish()),
            i64s(&|i| all[i].start),
            i64s(&|i| all[i].end),
            i64s(&|i| all[i].end - all[i].start),
            Arc::new(laddr.finish()),
            Arc::new(UInt16Array::from_iter(
                all.iter().map(|s| s.tuple.map(|t| t.local.port)),
            )),
            Arc::new(paddr.finish()),
            Arc::new(UInt16Array::from_iter(
                all.iter().map(|s| s.tuple.map(|t| t.remote.port)),
            )),
            i64s(&|i| all[i].bytes_in),
            i64s(&|i| all[i].bytes_out),
            i64s(&|i| splits[i].cpu),
            i64s(&|i| splits[i].runnable),
            i64s(&|i| splits[i].blocked()),
            i64s(&|i| splits[i].network),
            i64s(&|i| splits[i].disk),
            i64s(&|i| splits[i].lock),
            i64s(&|i| splits[i].other),
            i64s(&|i| splits[i].unknown),
            i64s(&|i| all[i].events),
            i64s(&|i| selfs[i][0]),
            i64s(&|i| selfs[i][1]),
            i64s(&|i| selfs[i][2]),
            i64s(&|i| selfs[i][3]),
            i64s(&|i| selfs[i][4]),
            i64s(&|i| selfs[i][5]),
            i64s(&|i| selfs[i][6]),
            Arc::new(Int32Array::from_iter(all.iter().map(|s| s.end_tid))),
        ];
        let spans_b = RecordBatch::try_new(spans::schema(), cols).map_err(arrow)?;
        // edges
        let es: Vec<_> = fin.iter().flat_map(|f| f.request.edges.iter()).collect();
        let mut rule = Dict::new();
        for e in &es {
            rule.append_value(e.rule.as_str());
        }
        let cols: Vec<ArrayRef> = vec![
            Arc::new(UInt64Array::from_iter_values(es.iter().map(|e| e.request))),
            Arc::new(UInt64Array::from_iter_values(es.iter().map(|e| e.from))),
            Arc::new(UInt64Array::from_iter_values(es.iter().map(|e| e.to))),
            Arc::new(rule.finish()),
            Arc::new(Float32Array::from_iter_values(
                es.iter().map(|e| e.confidence),
            )),
            Arc::new(Int64Array::from_iter_values(es.iter().map(|e| e.ts))),
        ];
        let edges_b = RecordBatch::try_new(edges::schema(), cols).map_err(arrow)?;
        Ok([reqs, spans_b, edges_b])
    }
}

/// Per span (in `fin`'s span order): self time and self on-CPU, runnable and blocked network,
/// disk, lock, other time, as the `spans` schema defines them. `splits` is in the same order.
///
/// Self time is exclusive time: every instant of the request's interval goes to exactly one
/// span, the deepest span open at that instant (the latest started among equals), and instants
/// no span covers go to the root. So a request's self times add up to its duration whatever the
/// spans' shapes. Subtracting children from parents does not: an event loop's call outlasts the
/// turn that made it and turns sit beside the root (capture `s2-c4`, nginx interleaving four
/// connections, summed 0.7% over on request 9). On a thread-per-request server every child lies
/// inside its parent and the two definitions agree.
///
/// The self split is the span's split minus its client children's (the part of each call inside
/// the span), fitted to the self time: the clocks give a span's split only over its own
/// interval, and a call is where the thread waited.
fn self_times(fin: &[Finished], splits: &[crate::sched::Split]) -> Vec<[i64; 7]> {
    let mut out = Vec::with_capacity(splits.len());
    let mut base = 0;
    for f in fin {
        let n = f.spans.len();
        let index: hashbrown::HashMap<u64, usize> =
            f.spans.iter().enumerate().map(|(i, s)| (s.id, i)).collect();
        let exclusive = exclusive_times(f, &index);
        // Per parent: its client children's split, the part inside the parent.
        let mut calls = vec![crate::sched::Split::default(); n];
        for (i, s) in f.spans.iter().enumerate() {
            let Some(&p) = s.parent.and_then(|p| index.get(&p)) else {
                continue;
            };
            if s.kind != SpanKind::Client {
                continue;
            }
            let parent = &f.spans[p];
            let d = s.end - s.start;
            let inside = (s.end.min(parent.end) - s.start.max(parent.start)).clamp(0, d);
            calls[p].add(&splits[base + i].scaled(inside, d));
        }
        for (i, s) in f.spans.iter().enumerate() {
            let own = exclusive[i];
            out.push(match s.kind {
                SpanKind::Client => {
                    let w = s.wire.fitted(own);
                    [own, w.cpu, w.runnable, w.network, w.disk, w.lock, w.other]
                }
                _ => {
                    let v = splits[base + i].since(&calls[i]).fitted(own);
                    [own, v.cpu, v.runnable, v.network, v.disk, v.lock, v.other]
                }
            });
        }
        base += n;
    }
    out
}

/// Each span's exclusive time within the request's interval (see [`self_times`]), in span
/// order. A sweep over the spans' ends: O(n log n) per request.
fn exclusive_times(f: &Finished, index: &hashbrown::HashMap<u64, usize>) -> Vec<i64> {
    let n = f.spans.len();
    let mut out = vec![0i64; n];
    let (lo, hi) = (f.request.start, f.request.end.max(f.request.start));
    // Depth in the span tree; a parent outside the request (or a cycle) counts as the top.
    let mut depth = vec![usize::MAX; n];
    for i in 0..n {
        let mut chain = Vec::new();
        let mut j = i;
        loop {
            if depth[j] != usize::MAX {
                break;
            }
            if chain.contains(&j) || chain.len() > n {
                break;
            }
            chain.push(j);
            match f.spans[j].parent.and_then(|p| index.get(&p)) {
                Some(&p) => j = p,
                None => break,
            }
        }
        // `chain` runs from `i` up; its last span is a child of `j`, whose depth is known, or
        // is the top.
        let top = if depth[j] != usize::MAX {
            depth[j] + 1
        } else {
            0
        };
        for (k, &c) in chain.iter().rev().enumerate() {
            depth[c] = top + k;
        }
    }
    let root = f
        .spans
        .iter()
        .position(|s| s.id == f.request.root)
        .unwrap_or(0);
    // (time, opens, span): closes sort before opens at the same instant.
    let mut points: Vec<(i64, bool, usize)> = Vec::with_capacity(2 * n);
    for (i, s) in f.spans.iter().enumerate() {
        let (a, b) = (s.start.max(lo), s.end.min(hi));
        if a < b {
            points.push((a, true, i));
            points.push((b, false, i));
        }
    }
    points.sort_unstable();
    // The deepest open span, the latest started among equals, is the last key.
    let key = |i: usize| (depth[i], f.spans[i].start, i);
    let mut open = std::collections::BTreeSet::new();
    let mut at = lo;
    for (t, opens, i) in points {
        if t > at {
            let owner = open.last().map_or(root, |&(_, _, j)| j);
            out[owner] += t - at;
            at = t;
        }
        if opens {
            open.insert(key(i));
        } else {
            open.remove(&key(i));
        }
    }
    if hi > at && n > 0 {
        out[root] += hi - at;
    }
    out
}

/// Per request: the span with the most self time (the smallest span id among equals).
fn critical_spans(fin: &[Finished], selfs: &[[i64; 7]]) -> Vec<u64> {
    let mut out = Vec::with_capacity(fin.len());
    let mut base = 0;
    for f in fin {
        let n = f.spans.len();
        let best = (0..n).max_by(|&a, &b| {
            (selfs[base + a][0].cmp(&selfs[base + b][0])).then(f.spans[b].id.cmp(&f.spans[a].id))
        });
        out.push(best.map_or(f.request.root, |i| f.spans[i].id));
        base += n;
    }
    out
}
