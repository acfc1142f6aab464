//! Builds a large correlated dataset for the query benchmark by replicating a real one.
//!
//! `testdata/s2-c4` (47,896 events, 300 requests) is ingested and correlated, then its tables
//! are written `--copies` times with `ts_ns`/`start_ns`/`end_ns` shifted past the previous
//! copy and request/span ids offset so every copy's requests are distinct. `events` and
//! `lost_events` get `--event-copies` copies (default 1,100: 52.7M events), the correlation
//! tables `--copies` (default 3,334: 1.0M requests, 7.0M spans).
//!
//! `cargo run --release -p kreq-benches --bin make-large-dataset -- OUT [--copies N] [--event-copies N]`

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Int64Array, RecordBatch, UInt64Array};
use arrow::compute::concat_batches;
use kreq_correlate::dataset::{correlate, read_manifest, Options};
use kreq_ingest::{ingest, IngestOptions, NoProgress};
use kreq_schemas::writer;
use parquet::arrow::ArrowWriter;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// One table of a dataset as a single batch, `None` when it has no rows.
fn read_table(dir: &Path) -> Res<Option<RecordBatch>> {
    let batches = kreq_correlate::read_table(dir)?;
    match batches.first() {
        None => Ok(None),
        Some(b) => Ok(Some(concat_batches(&b.schema(), &batches)?)),
    }
}

const TIME_COLS: &[&str] = &["ts_ns", "start_ns", "end_ns"];
const ID_COLS: &[&str] = &[
    "request_id",
    "span_id",
    "parent_span_id",
    "root_span_id",
    "critical_span_id",
    "from_span",
    "to_span",
];

fn shifted(b: &RecordBatch, dt: i64, did: u64) -> Res<RecordBatch> {
    let mut cols: Vec<ArrayRef> = Vec::with_capacity(b.num_columns());
    for (f, c) in b.schema().fields().iter().zip(b.columns()) {
        let name = f.name().as_str();
        let c = if TIME_COLS.contains(&name) {
            let a = c
                .as_any()
                .downcast_ref::<Int64Array>()
                .ok_or("time column")?;
            Arc::new(a.iter().map(|v| v.map(|v| v + dt)).collect::<Int64Array>()) as ArrayRef
        } else if ID_COLS.contains(&name) {
            let a = c
                .as_any()
                .downcast_ref::<UInt64Array>()
                .ok_or("id column")?;
            Arc::new(
                a.iter()
                    .map(|v| v.map(|v| v + did))
                    .collect::<UInt64Array>(),
            ) as ArrayRef
        } else {
            c.clone()
        };
        cols.push(c);
    }
    Ok(RecordBatch::try_new(b.schema(), cols)?)
}

fn write_copies(
    src: &RecordBatch,
    dir: &Path,
    table: &str,
    copies: usize,
    dt: i64,
    did: u64,
) -> Res<()> {
    std::fs::create_dir_all(dir)?;
    let per_part = ((1usize << 20) / src.num_rows().max(1)).max(1) * 4;
    let mut part = 0;
    let mut k = 0;
    while k < copies {
        let path = dir.join(format!("part-{part:06}.parquet"));
        let props = writer::properties(table, writer::DEFAULT_ZSTD_LEVEL, &[]);
        let mut w = ArrowWriter::try_new(std::fs::File::create(&path)?, src.schema(), Some(props))?;
        for _ in 0..per_part.min(copies - k) {
            w.write(&shifted(src, dt * k as i64, did * k as u64)?)?;
            k += 1;
        }
        w.close()?;
        part += 1;
        eprint!("\r{table}: {k}/{copies} copies");
    }
    eprintln!();
    Ok(())
}

fn main() -> Res<()> {
    let mut args = std::env::args().skip(1);
    let mut out: Option<PathBuf> = None;
    let (mut copies, mut event_copies) = (3334usize, 1100usize);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--copies" => copies = args.next().ok_or("--copies N")?.parse()?,
            "--event-copies" => event_copies = args.next().ok_or("--event-copies N")?.parse()?,
            _ => out = Some(PathBuf::from(a)),
        }
    }
    let out = out.ok_or("usage: make-large-dataset OUT [--copies N] [--event-copies N]")?;
    let seed = out.with_extension("seed");
    let mut opts = IngestOptions::new(&seed);
    opts.force = true;
    opts.trace_clock = Some("mono".into());
    ingest(
        &[kreq_benches::testdata().join("s2-c4/trace.txt.zst")],
        &opts,
        &NoProgress,
    )?;
    correlate(&seed, &Options::default())?;
    let mut manifest = read_manifest(&seed)?;
    let (t0, t1) = manifest.time_range_ns.ok_or("empty seed")?;
    let dt = (t1 - t0) + 1_000_000_000;
    let max_id = read_table(&seed.join(kreq_schemas::table::SPANS.name))?
        .and_then(|b| {
            let a = b
                .column_by_name("span_id")?
                .as_any()
                .downcast_ref::<UInt64Array>()?
                .clone();
            arrow::compute::max(&a)
        })
        .ok_or("no spans")?
        + 1;
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out)?;
    for (table, dir, n) in [
        ("events", kreq_schemas::table::EVENTS.name, event_copies),
        (
            "lost_events",
            kreq_schemas::table::LOST_EVENTS.name,
            event_copies,
        ),
        ("requests", kreq_schemas::table::REQUESTS.name, copies),
        ("spans", kreq_schemas::table::SPANS.name, copies),
        ("edges", kreq_schemas::table::EDGES.name, copies),
    ] {
        match read_table(&seed.join(dir))? {
            Some(src) if src.num_rows() > 0 => {
                write_copies(&src, &out.join(dir), table, n, dt, max_id)?
            }
            _ => {
                // Keep the (empty) table so the dataset has every table.
                std::fs::create_dir_all(out.join(dir))?;
                for e in std::fs::read_dir(seed.join(dir))? {
                    let p = e?.path();
                    std::fs::copy(&p, out.join(dir).join(p.file_name().ok_or("name")?))?;
                }
            }
        }
    }
    manifest.events *= event_copies as u64;
    manifest.time_range_ns = Some((t0, t0 + dt * event_copies as i64));
    manifest.sorted = true;
    if let Some(c) = manifest.correlation.as_mut() {
        c.requests *= copies as u64;
        c.spans *= copies as u64;
        c.edges *= copies as u64;
    }
    manifest.write(&out)?;
    std::fs::remove_dir_all(&seed)?;
    println!(
        "wrote {}: {} events ({event_copies} copies), {} requests ({copies} copies)",
        out.display(),
        manifest.events,
        manifest.correlation.map_or(0, |c| c.requests)
    );
    Ok(())
}
