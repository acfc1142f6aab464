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

use crate::losses::Losses;
use arrow::array::{Array, ArrayRef, Int64Array, RecordBatch, UInt16Array, UInt64Array};
use kreq_schemas::dataset::{self as ds, CorrelationInfo, Manifest};
use kreq_schemas::{events, lost_events, SCHEMA_VERSION, TABLE_KEY};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::engine::{Config, Engine, LabelSink, Stats};
use crate::event::{Event, Kind};
use crate::input::PartReader;
use crate::output::{write_file, PartWriter, ResultRows};
use crate::socket::Ingress;
use crate::stream::Tag;
use crate::table::{col, parts_of, read_table};
use crate::{ingress, Error, Interner, Result};

/// What to correlate with.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Ingress endpoints (`ADDR:PORT`, `:PORT`); empty to detect them.
    pub ingress: Vec<String>,
    /// A responded request is finished after this much idle trace time (ns); 0 for the default.
    pub linger_ns: i64,
    /// First request and span id (0 or 1: from 1); see [`crate::engine::Config::first_id`].
    pub first_id: u64,
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

/// Reads a dataset's manifest.
pub fn read_manifest(dataset: &Path) -> Result<Manifest> {
    Manifest::read(dataset).map_err(|e| Error::Dataset {
        path: dataset.join(ds::MANIFEST),
        msg: match e.kind() {
            std::io::ErrorKind::InvalidData => format!("bad manifest: {e}"),
            _ => {
                format!("not a kreq dataset ({e}); create one with `kreq ingest` or `kreq record`")
            }
        },
    })
}

/// The labels of one events part (0 = unlabelled), kept until the part is rewritten.
struct PartLabels {
    path: PathBuf,
    first_row: u64,
    request: Vec<u64>,
    span: Vec<u64>,
}

impl PartLabels {
    fn rewrite(self) -> Result<()> {
        rewrite_part(&self.path, &self.request, &self.span)
    }
}

/// Keeps the labels of the part being read and the one before it; a syscall can span a part
/// boundary, so a part is written only once the next one has been read.
#[derive(Default)]
struct Window {
    parts: Vec<PartLabels>,
    late: u64,
}

impl LabelSink for Window {
    fn label(&mut self, row: u64, tag: Tag) {
        if let Some(p) = self.parts.iter_mut().rev().find(|p| row >= p.first_row) {
            if let Some(i) = usize::try_from(row - p.first_row)
                .ok()
                .filter(|&i| i < p.request.len())
            {
                p.request[i] = tag.request;
                p.span[i] = tag.span;
                return;
            }
        }
        self.late += 1;
    }
}

fn read_losses(dataset: &Path) -> Result<Losses> {
    let dir = dataset.join(kreq_schemas::table::LOST_EVENTS.name);
    let mut reports = Vec::new();
    for b in read_table(&dir)? {
        let bad = |msg| Error::Dataset {
            path: dir.clone(),
            msg,
        };
        let ts = col::<Int64Array>(&b, lost_events::TS_NS).map_err(bad)?;
        let cpu = col::<UInt16Array>(&b, lost_events::CPU).map_err(bad)?;
        for i in 0..b.num_rows() {
            reports.push((ts.is_valid(i).then(|| ts.value(i)), cpu.value(i)));
        }
    }
    Ok(Losses::new(reports))
}

fn detect_ingress(parts: &[PathBuf], names: &mut Interner) -> Result<Vec<Ingress>> {
    let mut seen = hashbrown::HashSet::new();
    let mut evs = Vec::new();
    for p in parts {
        let mut r = PartReader::open(p)?;
        while r.next_batch(0, names, &mut evs)? {
            for e in evs.iter().filter(|e| e.kind == Kind::RcvSpace) {
                if let Some(t) = e.tuple() {
                    seen.insert((e.tgid.unwrap_or(e.tid), t));
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
    let parts = parts_of(&dataset.join(kreq_schemas::table::EVENTS.name))?;
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
        first_id: opts.first_id.max(1),
        ..Config::default()
    };
    if opts.linger_ns > 0 {
        cfg.linger_ns = opts.linger_ns;
    }
    let mut engine = Engine::new(cfg);
    let mut out = [
        PartWriter::new(dataset, kreq_schemas::table::REQUESTS.name)?,
        PartWriter::new(dataset, kreq_schemas::table::SPANS.name)?,
        PartWriter::new(dataset, kreq_schemas::table::EDGES.name)?,
    ];
    let mut rows = ResultRows::default();
    let mut window = Window::default();
    let mut first_row = 0u64;
    let mut evs: Vec<Event> = Vec::new();
    for p in &parts {
        let mut r = PartReader::open(p)?;
        let n = r.rows();
        window.parts.push(PartLabels {
            path: p.clone(),
            first_row,
            request: vec![0; n],
            span: vec![0; n],
        });
        let mut row = first_row;
        while r.next_batch(row, &mut names, &mut evs)? {
            row += evs.len() as u64;
            for e in &evs {
                if losses.see(e.ts, e.cpu) {
                    engine.resync();
                }
                engine.push(e, &mut window);
            }
            summary.incomplete +=
                collect(&mut engine, &losses, &mut rows, &mut summary.digest, &names);
            let size = engine.state_size();
            for (peak, s) in summary.peak_state.iter_mut().zip(size) {
                *peak = (*peak).max(s);
            }
            if rows.spans >= 32 * 1024 {
                flush(&mut engine, &mut rows, &names, &mut out)?;
            }
        }
        first_row += n as u64;
        while window.parts.len() > 2 {
            window.parts.remove(0).rewrite()?;
            summary.parts += 1;
        }
    }
    engine.finish(&mut window);
    summary.incomplete += collect(&mut engine, &losses, &mut rows, &mut summary.digest, &names);
    flush(&mut engine, &mut rows, &names, &mut out)?;
    summary.stats = engine.stats();
    for p in window.parts.drain(..) {
        p.rewrite()?;
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
    manifest
        .write(dataset)
        .map_err(io(&dataset.join(ds::MANIFEST)))?;
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
        // The extent of every span, not only the request's own interval: a loss corrupts
        // what follows it, and a span wrongly extended past its request's end reaches into
        // the loss that extended it.
        let (start, end) = f
            .spans
            .iter()
            .fold((f.request.start, f.request.end), |(a, b), s| {
                (a.min(s.start), b.max(s.end))
            });
        let complete = f.request.responded && !losses.touches(start, end);
        incomplete += u64::from(!complete);
        rows.push(f, complete);
    }
    incomplete
}

/// Writes the finished requests of `rows`, their links' confidence capped where `engine` sees
/// their event loop unsettled now ([`Engine::cap_unsettled`]).
fn flush(
    engine: &mut Engine,
    rows: &mut ResultRows,
    names: &Interner,
    out: &mut [PartWriter; 3],
) -> Result<()> {
    if rows.len() == 0 {
        return Ok(());
    }
    engine.cap_unsettled(&mut rows.finished);
    let batches = rows.take(names)?;
    for (w, b) in out.iter_mut().zip(batches.iter()) {
        w.write(b)?;
    }
    Ok(())
}

/// Rewrites one events part with its labels (0 = unlabelled), keeping its metadata.
fn rewrite_part(p: &Path, req: &[u64], span: &[u64]) -> Result<()> {
    let file = File::open(p).map_err(io(p))?;
    let pq = |source| Error::Parquet {
        path: p.to_owned(),
        source,
    };
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(pq)?;
    // The part keeps the columns it was written with, and its schema version: one of an
    // older schema still holds the fields a later one promoted in its `fields` map (readers
    // take the missing columns as null, or read the map: correlation, see `input`), and one of
    // a newer schema keeps the columns this kreq does not know.
    let current = events::schema();
    let mut fields: Vec<_> = builder
        .schema()
        .fields()
        .iter()
        .map(|f| match current.field_with_name(f.name()) {
            Ok(declared) => Arc::new(declared.clone()),
            Err(_) => f.clone(),
        })
        .collect();
    for label in [events::REQUEST_ID, events::SPAN_ID] {
        if !fields.iter().any(|f| f.name() == label) {
            fields.extend(current.field_with_name(label).ok().cloned().map(Arc::new));
        }
    }
    let schema = Arc::new(arrow::datatypes::Schema::new(fields));
    let meta: Vec<(String, String)> = builder
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .map(|kv| {
            kv.iter()
                .filter(|k| !matches!(k.key.as_str(), TABLE_KEY | "ARROW:schema"))
                .map(|k| (k.key.clone(), k.value.clone().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default();
    let reader = builder.with_batch_size(64 * 1024).build().map_err(pq)?;
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
            // A part rewritten by another tool may name the parts of a type differently: the
            // `fields` map as pyarrow writes it (`key_value`, `key`, `value`, the Parquet
            // spec's names) rather than as arrow-rs does (`entries`, `keys`, `values`).
            let c = if c.data_type() == f.data_type() {
                c
            } else {
                arrow::compute::cast(&c, f.data_type()).map_err(|source| Error::Arrow {
                    path: p.to_owned(),
                    source,
                })?
            };
            cols.push(c);
        }
        offset += n;
        RecordBatch::try_new(schema.clone(), cols).map_err(|source| Error::Arrow {
            path: p.to_owned(),
            source,
        })
    });
    write_file(
        p,
        kreq_schemas::table::EVENTS.name,
        schema.clone(),
        batches,
        &meta,
    )
}

/// Every event of a dataset decoded for correlation, in part order, with the interner that
/// names their comms and addresses. Holds the whole trace in memory: for benchmarks and tests,
/// not for [`correlate`], which streams.
pub fn load_events(dataset: &Path) -> Result<(Vec<Event>, Interner)> {
    let mut names = Interner::default();
    let mut all = Vec::new();
    let mut evs = Vec::new();
    for p in parts_of(&dataset.join(kreq_schemas::table::EVENTS.name))? {
        let mut r = PartReader::open(&p)?;
        while r.next_batch(all.len() as u64, &mut names, &mut evs)? {
            all.append(&mut evs);
        }
    }
    Ok((all, names))
}
