//! Correlating a dataset on disk: read its events in time order, run the [`Engine`], write
//! `spans`, `requests` and `edges`, and rewrite the events parts with their labels.
//!
//! Labels go into the `events` table itself (`request_id`, `span_id` columns) rather than a
//! side table: a side table joined by event position costs every query a join over all events,
//! while the rewritten columns cost nothing to read when unused and compress to almost nothing.
//! Parts are rewritten one at a time, each through a `.tmp` file renamed over the original, so
//! a crash leaves every part valid (labelled or not).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Int64Array, RecordBatch, UInt16Array, UInt64Array};
use kreq_schemas::dataset::{self as ds, CorrelationInfo, Manifest};
use kreq_schemas::{events, lost_events, SCHEMA_VERSION, SCHEMA_VERSION_KEY, TABLE_KEY};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::engine::{Config, Engine, LabelSink, Stats};
use crate::event::{Event, Kind};
use crate::input::PartReader;
use crate::output::{write_file, PartWriter, ResultRows};
use crate::socket::Ingress;
use crate::stream::Tag;
use crate::{ingress, Error, Interner, Result};

/// What to correlate with.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Ingress endpoints (`ADDR:PORT`, `:PORT`); empty to detect them.
    pub ingress: Vec<String>,
    /// A responded request is finished after this much idle trace time (ns); 0 for the default.
    pub linger_ns: i64,
}

/// What a correlation run did.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// Ingress endpoints used.
    pub ingress: Vec<String>,
    /// They were detected rather than given.
    pub ingress_auto: bool,
    /// Engine counters.
    pub stats: Stats,
    /// Requests touched by lost events or never answered.
    pub incomplete: u64,
    /// Labels that arrived after their part was written (syscalls spanning two whole parts).
    pub late_labels: u64,
    /// Largest live state seen: threads, sockets, streams, open requests, open spans.
    pub peak_state: [usize; 5],
    /// Events parts rewritten.
    pub parts: usize,
    /// Latency, slowest requests and time per service.
    pub digest: crate::summary::Digest,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_owned(),
        source,
    }
}

fn parts_of(dir: &Path) -> Result<Vec<PathBuf>> {
    if !dir.exists() {
        return Ok(Vec::new());
    }
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io(dir))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "parquet"))
        .collect();
    v.sort();
    Ok(v)
}

/// Reads a dataset's manifest.
pub fn read_manifest(dataset: &Path) -> Result<Manifest> {
    let path = dataset.join(ds::MANIFEST);
    let text = std::fs::read_to_string(&path).map_err(|e| Error::Dataset {
        path: path.clone(),
        msg: format!("not a kreq dataset ({e}); create one with `kreq ingest` or `kreq record`"),
    })?;
    serde_json::from_str(&text).map_err(|e| Error::Dataset {
        path,
        msg: format!("bad manifest: {e}"),
    })
}

/// Keeps the labels of the part being read and the one before it; a syscall can span a part
/// boundary, so a part is written only once the next one has been read.
struct Window {
    parts: Vec<(u64, Vec<u64>, Vec<u64>)>,
    late: u64,
}

impl LabelSink for Window {
    fn label(&mut self, row: u64, tag: Tag) {
        for (first, req, span) in self.parts.iter_mut().rev() {
            if row >= *first {
                if let Some(i) = usize::try_from(row - *first)
                    .ok()
                    .filter(|&i| i < req.len())
                {
                    req[i] = tag.request;
                    span[i] = tag.span;
                    return;
                }
                break;
            }
        }
        self.late += 1;
    }
}

/// Loss intervals per CPU: events were lost between a report's time and that CPU's next event.
struct Losses {
    reports: Vec<(i64, u16)>,
    next: usize,
    open: Vec<Option<i64>>,
    closed: Vec<(i64, i64)>,
}

impl Losses {
    fn see(&mut self, ts: i64, cpu: u16) {
        while let Some(&(t, c)) = self.reports.get(self.next).filter(|r| r.0 <= ts) {
            let c = c as usize;
            if self.open.len() <= c {
                self.open.resize(c + 1, None);
            }
            self.open[c] = Some(self.open[c].map_or(t, |o| o.min(t)));
            self.next += 1;
        }
        if let Some(Some(start)) = self.open.get(cpu as usize).copied() {
            if ts >= start && self.reports.iter().any(|_| true) {
                self.closed.push((start, ts));
                self.open[cpu as usize] = None;
            }
        }
    }

    fn touches(&self, start: i64, end: i64) -> bool {
        self.closed.iter().any(|&(a, b)| a <= end && b >= start)
            || self.open.iter().flatten().any(|&a| a <= end)
    }
}

fn read_losses(dataset: &Path) -> Result<Losses> {
    let mut reports = Vec::new();
    for p in parts_of(&dataset.join(ds::LOST_EVENTS_DIR))? {
        let file = File::open(&p).map_err(io(&p))?;
        let pq = |source| Error::Parquet {
            path: p.clone(),
            source,
        };
        for b in ParquetRecordBatchReaderBuilder::try_new(file)
            .map_err(pq)?
            .build()
            .map_err(pq)?
        {
            let b = b.map_err(|source| Error::Arrow {
                path: p.clone(),
                source,
            })?;
            let ts = b
                .column_by_name(lost_events::TS_NS)
                .and_then(|c| c.as_any().downcast_ref::<Int64Array>().cloned());
            let cpu = b
                .column_by_name(lost_events::CPU)
                .and_then(|c| c.as_any().downcast_ref::<UInt16Array>().cloned());
            let (Some(ts), Some(cpu)) = (ts, cpu) else {
                return Err(Error::Dataset {
                    path: p.clone(),
                    msg: "lost_events part lacks ts_ns/cpu".into(),
                });
            };
            for i in 0..b.num_rows() {
                let t = if ts.is_valid(i) {
                    ts.value(i)
                } else {
                    i64::MIN
                };
                reports.push((t, cpu.value(i)));
            }
        }
    }
    reports.sort_unstable();
    Ok(Losses {
        reports,
        next: 0,
        open: Vec::new(),
        closed: Vec::new(),
    })
}

fn detect_ingress(parts: &[PathBuf], names: &mut Interner) -> Result<Vec<Ingress>> {
    let mut seen = hashbrown::HashSet::new();
    let (mut evs, mut cpus) = (Vec::new(), Vec::new());
    for p in parts {
        let mut r = PartReader::open(p)?;
        while r.next_batch(0, names, &mut evs, &mut cpus)? {
            for e in evs.iter().filter(|e| e.kind == Kind::RcvSpace) {
                if let (Some(l), Some(rm)) = (e.src, e.dst) {
                    seen.insert((
                        e.tgid.unwrap_or(e.tid),
                        crate::Tuple {
                            local: l,
                            remote: rm,
                        },
                    ));
                }
            }
        }
    }
    let found = ingress::detect(seen);
    Ok(found
        .into_iter()
        .map(|e| Ingress {
            addr: Some(e.addr),
            port: e.port,
        })
        .collect())
}

fn ingress_text(i: &Ingress, names: &Interner) -> String {
    match i.addr {
        Some(a) if names.name(a).contains(':') => format!("[{}]:{}", names.name(a), i.port),
        Some(a) => format!("{}:{}", names.name(a), i.port),
        None => format!(":{}", i.port),
    }
}

/// Correlates the dataset at `dataset` in place.
pub fn correlate(dataset: &Path, opts: &Options) -> Result<Summary> {
    let mut manifest = read_manifest(dataset)?;
    let parts = parts_of(&dataset.join(ds::EVENTS_DIR))?;
    let mut names = Interner::default();
    let given: Vec<Ingress> = opts
        .ingress
        .iter()
        .map(|s| ingress::parse(s, &mut names))
        .collect::<Result<_>>()?;
    let ingress_auto = given.is_empty();
    let ingress = if ingress_auto {
        detect_ingress(&parts, &mut names)?
    } else {
        given
    };
    let mut summary = Summary {
        ingress: ingress.iter().map(|i| ingress_text(i, &names)).collect(),
        ingress_auto,
        ..Default::default()
    };
    let mut losses = read_losses(dataset)?;
    let mut cfg = Config {
        ingress,
        ..Config::default()
    };
    if opts.linger_ns > 0 {
        cfg.linger_ns = opts.linger_ns;
    }
    let mut engine = Engine::new(cfg);
    let meta = vec![];
    let mut out = [
        PartWriter::new(dataset, ds::REQUESTS_DIR, meta.clone())?,
        PartWriter::new(dataset, ds::SPANS_DIR, meta.clone())?,
        PartWriter::new(dataset, ds::EDGES_DIR, meta)?,
    ];
    let mut rows = ResultRows::default();
    let mut window = Window {
        parts: Vec::new(),
        late: 0,
    };
    let mut first_row = 0u64;
    let (mut evs, mut cpus): (Vec<Event>, Vec<u16>) = (Vec::new(), Vec::new());
    let mut pending_paths: Vec<PathBuf> = Vec::new();
    for p in &parts {
        let n = part_rows(p)?;
        window.parts.push((first_row, vec![0; n], vec![0; n]));
        pending_paths.push(p.clone());
        let mut r = PartReader::open(p)?;
        let mut row = first_row;
        while r.next_batch(row, &mut names, &mut evs, &mut cpus)? {
            row += evs.len() as u64;
            for (e, &c) in evs.iter().zip(&cpus) {
                losses.see(e.ts, c);
                engine.push(e, &mut window);
            }
            summary.incomplete +=
                collect(&mut engine, &losses, &mut rows, &mut summary.digest, &names);
            let size = engine.state_size();
            for (peak, s) in summary.peak_state.iter_mut().zip(size) {
                *peak = (*peak).max(s);
            }
            if rows.spans >= 32 * 1024 {
                flush(&mut rows, &names, &mut out)?;
            }
        }
        first_row += n as u64;
        while window.parts.len() > 2 {
            let (_, req, span) = window.parts.remove(0);
            rewrite_part(&pending_paths.remove(0), &req, &span)?;
            summary.parts += 1;
        }
    }
    summary.stats = engine.finish();
    summary.incomplete += collect(&mut engine, &losses, &mut rows, &mut summary.digest, &names);
    flush(&mut rows, &names, &mut out)?;
    for ((_, req, span), p) in window.parts.drain(..).zip(pending_paths.drain(..)) {
        rewrite_part(&p, &req, &span)?;
        summary.parts += 1;
    }
    summary.late_labels = window.late;
    manifest.schema_version = SCHEMA_VERSION.into();
    manifest.correlation = Some(CorrelationInfo {
        ingress: summary.ingress.clone(),
        ingress_auto,
        requests: summary.stats.requests,
        spans: summary.stats.spans,
        edges: summary.stats.edges,
        labelled_events: summary.stats.labelled - summary.late_labels,
    });
    write_manifest(dataset, &manifest)?;
    Ok(summary)
}

fn collect(
    engine: &mut Engine,
    losses: &Losses,
    rows: &mut ResultRows,
    digest: &mut crate::summary::Digest,
    names: &Interner,
) -> u64 {
    let mut incomplete = 0;
    for f in engine.take_finished() {
        digest.add(&f, names);
        let complete = f.request.responded && !losses.touches(f.request.start, f.request.end);
        incomplete += u64::from(!complete);
        rows.push(f, complete);
    }
    incomplete
}

fn flush(rows: &mut ResultRows, names: &Interner, out: &mut [PartWriter; 3]) -> Result<()> {
    if rows.len() == 0 {
        return Ok(());
    }
    let batches = rows.take(names)?;
    for (w, b) in out.iter_mut().zip(batches.iter()) {
        w.write(b)?;
    }
    Ok(())
}

fn part_rows(p: &Path) -> Result<usize> {
    let file = File::open(p).map_err(io(p))?;
    let b = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|source| Error::Parquet {
        path: p.to_owned(),
        source,
    })?;
    Ok(b.metadata().file_metadata().num_rows() as usize)
}

/// Rewrites one events part with its labels (0 = unlabelled), keeping its metadata.
fn rewrite_part(p: &Path, req: &[u64], span: &[u64]) -> Result<()> {
    let file = File::open(p).map_err(io(p))?;
    let pq = |source| Error::Parquet {
        path: p.to_owned(),
        source,
    };
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(pq)?;
    let meta: Vec<(String, String)> = builder
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .map(|kv| {
            kv.iter()
                .filter(|k| {
                    !matches!(
                        k.key.as_str(),
                        SCHEMA_VERSION_KEY | TABLE_KEY | "ARROW:schema"
                    )
                })
                .map(|k| (k.key.clone(), k.value.clone().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default();
    let reader = builder.with_batch_size(64 * 1024).build().map_err(pq)?;
    let schema = events::schema();
    let mut offset = 0usize;
    let batches = reader.map(|b| {
        let b = b.map_err(|source| Error::Arrow {
            path: p.to_owned(),
            source,
        })?;
        let n = b.num_rows();
        let lab = |v: &[u64]| -> ArrayRef {
            Arc::new(UInt64Array::from_iter(
                v[offset..offset + n].iter().map(|&x| (x != 0).then_some(x)),
            ))
        };
        let mut cols = Vec::with_capacity(schema.fields().len());
        for f in schema.fields() {
            let c = match f.name().as_str() {
                events::REQUEST_ID => lab(req),
                events::SPAN_ID => lab(span),
                name => b
                    .column_by_name(name)
                    .cloned()
                    .ok_or_else(|| Error::Dataset {
                        path: p.to_owned(),
                        msg: format!("events part lacks column `{name}`"),
                    })?,
            };
            cols.push(c);
        }
        offset += n;
        RecordBatch::try_new(schema.clone(), cols).map_err(|source| Error::Arrow {
            path: p.to_owned(),
            source,
        })
    });
    let out = p.with_extension("relabel");
    write_file(&out, "events", schema.clone(), batches, &meta)?;
    std::fs::rename(&out, p).map_err(io(p))
}

/// Writes the manifest through a temporary file.
pub fn write_manifest(dataset: &Path, m: &Manifest) -> Result<()> {
    let path = dataset.join(ds::MANIFEST);
    let tmp = dataset.join(format!("{}{}", ds::MANIFEST, ds::TMP_SUFFIX));
    let text = serde_json::to_string_pretty(m).map_err(|e| Error::Dataset {
        path: path.clone(),
        msg: e.to_string(),
    })?;
    std::fs::write(&tmp, text).map_err(io(&tmp))?;
    std::fs::rename(&tmp, &path).map_err(io(&path))
}

/// Every event of a dataset decoded for correlation, in part order, with the interner that
/// names their comms and addresses. Holds the whole trace in memory: for benchmarks and tests,
/// not for [`correlate`], which streams.
pub fn load_events(dataset: &Path) -> Result<(Vec<Event>, Interner)> {
    let mut names = Interner::default();
    let mut all = Vec::new();
    let (mut evs, mut cpus) = (Vec::new(), Vec::new());
    for p in parts_of(&dataset.join(ds::EVENTS_DIR))? {
        let mut r = PartReader::open(&p)?;
        while r.next_batch(all.len() as u64, &mut names, &mut evs, &mut cpus)? {
            all.append(&mut evs);
        }
    }
    Ok((all, names))
}
