//! `kreq ingest`: inputs -> chunks -> parallel parse and Parquet write -> dataset directory.
//!
//! One reader thread (the caller's) decompresses and cuts whole-line chunks; `threads` workers
//! each parse a chunk and write it as its own part file, so parsing and compression both scale
//! with threads. The manifest is written last; every part file is complete when it appears.

use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::Mutex;

use kreq_schemas::dataset::{self, Manifest, SourceSummary};
use kreq_schemas::{events, lost_events, SCHEMA_VERSION};

use crate::binary::tracedat::{self, is_tracedat};
use crate::chunk::{LostReport, MalformedLine, ParsedChunk};
use crate::error::{Error, Result};
use crate::input::{chunk_size, open, Chunker};
use crate::output::{detect_format, file_name, prepare_output, write_manifest};
use crate::part::{write_part, FileRange, InMemory, PartTarget};
use crate::sink::{lost_events_batch, write_table};

/// Settings of one ingest run.
#[derive(Debug, Clone)]
pub struct IngestOptions {
    /// Dataset directory to create.
    pub output: PathBuf,
    /// Worker threads (at least 1).
    pub threads: usize,
    /// Target chunk size in bytes of text; each chunk becomes one part file.
    pub chunk_bytes: usize,
    /// Fail on the first malformed line instead of counting and skipping it.
    pub strict: bool,
    /// zstd level for Parquet pages.
    pub zstd_level: i32,
    /// Trace clock of the input (`mono`, `local`, ...), when the user knows it.
    pub trace_clock: Option<String>,
    /// Kernel release of the traced machine, when known.
    pub kernel: Option<String>,
    /// Host name of the traced machine, when known.
    pub host: Option<String>,
    /// Replace an existing dataset.
    pub force: bool,
}

impl IngestOptions {
    /// Defaults: all cores, 64 MiB chunks, zstd level [`kreq_schemas::writer::DEFAULT_ZSTD_LEVEL`].
    pub fn new(output: impl Into<PathBuf>) -> Self {
        Self {
            output: output.into(),
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            chunk_bytes: 64 << 20,
            strict: false,
            zstd_level: kreq_schemas::writer::DEFAULT_ZSTD_LEVEL,
            trace_clock: None,
            kernel: None,
            host: None,
            force: false,
        }
    }
}

/// Receives progress while ingesting (the library itself prints nothing).
pub trait Progress: Sync {
    /// `bytes` more of decompressed input were handed to the parsers.
    fn advance(&self, bytes: u64);
}

/// No progress reporting.
#[derive(Debug)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn advance(&self, _bytes: u64) {}
}

/// What an ingest run did.
#[derive(Debug)]
pub struct IngestReport {
    /// The manifest written to the dataset.
    pub manifest: Manifest,
    /// Malformed lines (the first few per chunk), with their input file.
    pub malformed: Vec<(String, MalformedLine)>,
    /// Bytes of Parquet written.
    pub parquet_bytes: u64,
}

struct Job {
    seq: u64,
    source: usize,
    payload: Payload,
}

/// Text still to parse, or rows already decoded from binary input.
enum Payload {
    /// Whole lines read by the reader thread (stdin, compressed input), at this input offset.
    Text(u64, Vec<u8>),
    /// The lines that start in this byte range of a regular file, which the worker reads.
    Range(u64, u64),
    Decoded(ParsedChunk),
}

struct Done {
    seq: u64,
    source: usize,
    /// The chunk's results; its events are dropped once written (see `rows`).
    parsed: ParsedChunk,
    rows: u64,
    part: Option<String>,
    bytes: u64,
    time_range: Option<(i64, i64)>,
}

/// Ingest `inputs` (paths; `-` is stdin) into the dataset at `opts.output`.
pub fn ingest(
    inputs: &[PathBuf],
    opts: &IngestOptions,
    progress: &dyn Progress,
) -> Result<IngestReport> {
    prepare_output(&opts.output, opts.force)?;
    let names: Vec<String> = inputs.iter().map(|p| p.display().to_string()).collect();
    let clock = opts.trace_clock.clone().unwrap_or_else(|| "unknown".into());
    let mut sources: Vec<SourceSummary> = names
        .iter()
        .map(|n| SourceSummary {
            path: n.clone(),
            ..Default::default()
        })
        .collect();
    let (job_tx, job_rx) = mpsc::sync_channel::<Job>(opts.threads.max(1));
    let job_rx = Mutex::new(job_rx);
    // Text buffers go back to the reader once parsed.
    let (free_tx, free_rx) = mpsc::channel::<Vec<u8>>();
    let (done_tx, done_rx) = mpsc::channel::<Result<Done>>();
    let mut results: Vec<Done> = Vec::new();
    let mut first_error: Option<Error> = None;

    std::thread::scope(|scope| {
        for _ in 0..opts.threads.max(1) {
            let done_tx = done_tx.clone();
            let free_tx = free_tx.clone();
            let job_rx = &job_rx;
            let names = &names;
            let clock = &clock;
            scope.spawn(move || loop {
                let job = match job_rx.lock() {
                    Ok(rx) => rx.recv(),
                    Err(_) => return,
                };
                let Ok(job) = job else { return };
                let done = work(job, opts, inputs, names, clock, &free_tx, progress);
                if done_tx.send(done).is_err() {
                    return;
                }
            });
        }
        drop(done_tx);
        drop(free_tx);
        let mut seq = 0;
        let mut stop = false;
        'inputs: for (source, path) in inputs.iter().enumerate() {
            let input = match open(path) {
                Ok(r) => r,
                Err(e) => {
                    first_error = Some(Error::io(path, e));
                    break;
                }
            };
            if let Some(size) = input.size {
                let head = match read_head(path) {
                    Ok(h) => h,
                    Err(e) => {
                        first_error = Some(Error::io(path, e));
                        break;
                    }
                };
                if !is_tracedat(&head) {
                    // A regular text file: each worker reads its own byte range.
                    if !head.is_empty() {
                        sources[source].format = detect_format(&head).into();
                    }
                    sources[source].bytes = size;
                    let chunk = chunk_size(Some(size), opts.chunk_bytes, opts.threads) as u64;
                    let mut start = 0;
                    while start < size && !stop {
                        let end = size.min(start + chunk);
                        let payload = Payload::Range(start, end);
                        if job_tx
                            .send(Job {
                                seq,
                                source,
                                payload,
                            })
                            .is_err()
                        {
                            break 'inputs;
                        }
                        seq += 1;
                        start = end;
                        while let Ok(done) = done_rx.try_recv() {
                            stop |= !collect(done, opts.strict, &mut results, &mut first_error);
                        }
                    }
                    if stop {
                        break;
                    }
                    continue;
                }
            }
            let chunk = chunk_size(input.size, opts.chunk_bytes, opts.threads);
            let mut chunker = Chunker::new(input.reader, chunk);
            let mut offset = 0;
            loop {
                while let Ok(buf) = free_rx.try_recv() {
                    chunker.recycle(buf);
                }
                let data = match chunker.next_chunk() {
                    Ok(Some(d)) => d,
                    Ok(None) => break,
                    Err(e) => {
                        first_error = Some(Error::io(path, e));
                        break 'inputs;
                    }
                };
                if offset == 0 && is_tracedat(&data) {
                    let decoded =
                        match read_tracedat(path, data, &mut chunker, &mut sources[source]) {
                            Ok(d) => d,
                            Err(e) => {
                                first_error = Some(e);
                                break 'inputs;
                            }
                        };
                    for parsed in decoded {
                        let payload = Payload::Decoded(parsed);
                        if job_tx
                            .send(Job {
                                seq,
                                source,
                                payload,
                            })
                            .is_err()
                        {
                            break 'inputs;
                        }
                        seq += 1;
                    }
                    break;
                }
                if offset == 0 {
                    sources[source].format = detect_format(&data).into();
                }
                let len = data.len() as u64;
                sources[source].bytes += len;
                let payload = Payload::Text(offset, data);
                offset += len;
                if job_tx
                    .send(Job {
                        seq,
                        source,
                        payload,
                    })
                    .is_err()
                {
                    break 'inputs;
                }
                seq += 1;
                // Stop early in strict mode once a worker has reported a problem.
                while let Ok(done) = done_rx.try_recv() {
                    stop |= !collect(done, opts.strict, &mut results, &mut first_error);
                }
                if stop {
                    break 'inputs;
                }
            }
        }
        drop(job_tx);
        for done in done_rx.iter() {
            collect(done, opts.strict, &mut results, &mut first_error);
        }
    });
    if let Some(e) = first_error {
        return Err(e);
    }
    results.sort_by_key(|d| d.seq);
    number_lines(&mut results, &mut sources);
    if opts.strict {
        let first = results
            .iter()
            .find_map(|d| Some((d.source, d.parsed.malformed.first()?)));
        if let Some((source, m)) = first {
            return Err(Error::Malformed {
                file: names[source].clone(),
                line: m.line,
                offset: m.offset,
                reason: m.reason,
                text: m.text.clone(),
            });
        }
    }
    finish(results, sources, opts, clock)
}

/// Keep a finished chunk; false when ingest should stop (an error, or a malformed line in
/// strict mode).
fn collect(
    done: Result<Done>,
    strict: bool,
    results: &mut Vec<Done>,
    first_error: &mut Option<Error>,
) -> bool {
    match done {
        Ok(d) => {
            let go_on = !(strict && d.parsed.malformed_count > 0);
            results.push(d);
            go_on && first_error.is_none()
        }
        Err(e) => {
            if first_error.is_none() {
                *first_error = Some(e);
            }
            false
        }
    }
}

/// Parts number their lines from 1; once all are in (in input order), make line numbers count
/// from the start of each input and total the lines per input.
fn number_lines(results: &mut [Done], sources: &mut [SourceSummary]) {
    let mut base = vec![0u64; sources.len()];
    for d in results {
        let b = base[d.source];
        for m in &mut d.parsed.malformed {
            m.line += b;
        }
        for l in &mut d.parsed.lost {
            l.line = l.line.map(|n| n + b);
        }
        base[d.source] += d.parsed.lines;
    }
    for (s, lines) in sources.iter_mut().zip(base) {
        s.lines = lines;
    }
}

/// The first bytes of a file, enough to tell its format.
fn read_head(path: &std::path::Path) -> std::io::Result<Vec<u8>> {
    let file = std::fs::File::open(path)?;
    let mut head = vec![0u8; 1 << 16];
    let n = std::os::unix::fs::FileExt::read_at(&file, &mut head, 0)?;
    head.truncate(n);
    Ok(head)
}

fn work(
    job: Job,
    opts: &IngestOptions,
    inputs: &[PathBuf],
    names: &[String],
    clock: &str,
    free: &mpsc::Sender<Vec<u8>>,
    progress: &dyn Progress,
) -> Result<Done> {
    let path = dataset::part_path(&opts.output, dataset::EVENTS_DIR, job.seq);
    let metadata = part_metadata(opts, &names[job.source], clock);
    let input = inputs[job.source].as_path();
    let to = PartTarget {
        input,
        path: &path,
        zstd_level: opts.zstd_level,
        metadata: &metadata,
    };
    let advance = |bytes| progress.advance(bytes);
    let written = match job.payload {
        Payload::Text(offset, data) => {
            let w = write_part(&mut InMemory::new(&data, offset), 1, to, &advance);
            let _ = free.send(data);
            w?
        }
        Payload::Range(start, end) => {
            let file = std::fs::File::open(input).map_err(|e| Error::io(input, e))?;
            let size = file.metadata().map_err(|e| Error::io(input, e))?.len();
            let mut range =
                FileRange::new(&file, start, end, size).map_err(|e| Error::io(input, e))?;
            write_part(&mut range, 1, to, &advance)?
        }
        Payload::Decoded(parsed) => return write_decoded(job.seq, job.source, parsed, to),
    };
    let part = format!("{}/{}", dataset::EVENTS_DIR, file_name(&path));
    Ok(Done {
        seq: job.seq,
        source: job.source,
        parsed: written.parsed,
        rows: written.rows,
        part: (written.rows > 0).then_some(part),
        bytes: written.bytes,
        time_range: written.time_range,
    })
}

/// Write rows decoded from binary input as one part.
fn write_decoded(
    seq: u64,
    source: usize,
    mut parsed: ParsedChunk,
    to: PartTarget<'_>,
) -> Result<Done> {
    let time_range = time_range(&parsed.events);
    let rows = parsed.events.num_rows() as u64;
    let (part, bytes) = if rows > 0 {
        let bytes = write_table(
            to.path,
            "events",
            &parsed.events,
            to.zstd_level,
            to.metadata,
        )?;
        let part = format!("{}/{}", dataset::EVENTS_DIR, file_name(to.path));
        (Some(part), bytes)
    } else {
        (None, 0)
    };
    // The rows are on disk; keeping them until the run ends would only hold memory.
    parsed.events = arrow::record_batch::RecordBatch::new_empty(parsed.events.schema());
    Ok(Done {
        seq,
        source,
        parsed,
        rows,
        part,
        bytes,
        time_range,
    })
}

/// Read the rest of a trace.dat input and decode it into chunks of rows.
fn read_tracedat<R: std::io::Read>(
    path: &std::path::Path,
    mut data: Vec<u8>,
    chunker: &mut Chunker<R>,
    summary: &mut SourceSummary,
) -> Result<Vec<ParsedChunk>> {
    while let Some(more) = chunker.next_chunk().map_err(|e| Error::io(path, e))? {
        data.extend_from_slice(&more);
    }
    summary.bytes = data.len() as u64;
    summary.format = format!("trace.dat v{}", data.get(10).map_or('?', |&b| b as char));
    let dat_err = |e| Error::TraceDat {
        path: path.to_owned(),
        cause: e,
    };
    let dat = tracedat::parse(&data, None).map_err(dat_err)?;
    drop(data);
    summary.clock = dat.clock.clone();
    summary.uname = dat.uname.clone();
    let decoded = dat.decode(kreq_schemas::writer::MAX_ROW_GROUP_ROWS);
    if let Some((cpu, page, e)) = decoded.bad_pages.first() {
        return Err(dat_err(tracedat::TraceDatError {
            offset: 0,
            reason: format!("cpu {cpu} page {page}: {e}"),
        }));
    }
    let mut chunks = decoded.chunks;
    let stats = crate::binary::stats::lost_from_stats(&dat.cpu_stats);
    if let Some(first) = chunks.first_mut() {
        first.lost.extend(stats);
    }
    Ok(chunks)
}

/// Smallest and largest `ts_ns` of an events batch.
pub(crate) fn time_range(batch: &arrow::record_batch::RecordBatch) -> Option<(i64, i64)> {
    let ts = batch
        .column_by_name(events::TS_NS)?
        .as_any()
        .downcast_ref::<arrow::array::Int64Array>()?;
    arrow::compute::min(ts).zip(arrow::compute::max(ts))
}

fn part_metadata(opts: &IngestOptions, source: &str, clock: &str) -> Vec<(String, String)> {
    let mut kv = vec![
        (dataset::SOURCE_KEY.to_owned(), source.to_owned()),
        (dataset::CLOCK_KEY.to_owned(), clock.to_owned()),
    ];
    if let Some(k) = &opts.kernel {
        kv.push((dataset::KERNEL_KEY.to_owned(), k.clone()));
    }
    if let Some(h) = &opts.host {
        kv.push((dataset::HOST_KEY.to_owned(), h.clone()));
    }
    kv
}

fn finish(
    results: Vec<Done>,
    mut sources: Vec<SourceSummary>,
    opts: &IngestOptions,
    mut clock: String,
) -> Result<IngestReport> {
    let names: Vec<String> = sources.iter().map(|s| s.path.clone()).collect();
    let mut lost: Vec<(&str, LostReport)> = Vec::new();
    let mut malformed = Vec::new();
    let mut parquet_bytes = 0;
    let mut sorted = true;
    let mut prev_max: Option<i64> = None;
    let mut range: Option<(i64, i64)> = None;
    let mut last_ts_of_source: Vec<Option<i64>> = vec![None; sources.len()];
    let mut counter = false;
    for d in &results {
        let s = &mut sources[d.source];
        s.events += d.rows;
        s.lost_reports += d.parsed.lost.len() as u64;
        s.malformed += d.parsed.malformed_count;
        s.parts.extend(d.part.clone());
        parquet_bytes += d.bytes;
        counter |= d.parsed.counter_clock;
        for r in &d.parsed.lost {
            let mut r = r.clone();
            r.ts_ns = r.ts_ns.or(last_ts_of_source[d.source]);
            lost.push((names[d.source].as_str(), r));
        }
        if d.parsed.last_ts.is_some() {
            last_ts_of_source[d.source] = d.parsed.last_ts;
        }
        malformed.extend(
            d.parsed
                .malformed
                .iter()
                .map(|m| (names[d.source].clone(), m.clone())),
        );
        if let Some((lo, hi)) = d.time_range {
            sorted &= prev_max.is_none_or(|p| p <= lo);
            prev_max = Some(hi);
            range = Some(range.map_or((lo, hi), |(a, b)| (a.min(lo), b.max(hi))));
        }
    }
    if opts.trace_clock.is_none() {
        if let Some(c) = sources.iter().find_map(|s| s.clock.clone()) {
            clock = c;
        } else if counter {
            clock = "counter".into();
        }
    }
    // `uname -a` style: "Linux HOST RELEASE ..." names the traced machine.
    let uname = sources
        .iter()
        .find_map(|s| s.uname.clone())
        .unwrap_or_default();
    let mut uname = uname.split_whitespace().skip(1);
    let (uname_host, uname_kernel) = (
        uname.next().map(str::to_owned),
        uname.next().map(str::to_owned),
    );
    let total_events: u64 = sources.iter().map(|s| s.events).sum();
    let meta = part_metadata(opts, "", &clock);
    if total_events == 0 {
        // Keep the table readable: one empty file carrying the schema.
        let empty = arrow::record_batch::RecordBatch::new_empty(events::schema());
        let path = dataset::part_path(&opts.output, dataset::EVENTS_DIR, 0);
        parquet_bytes += write_table(&path, "events", &empty, opts.zstd_level, &meta)?;
    }
    let lost_batch = lost_events_batch(&lost)?;
    debug_assert_eq!(lost_batch.schema(), lost_events::schema());
    let lost_path = dataset::part_path(&opts.output, dataset::LOST_EVENTS_DIR, 0);
    parquet_bytes += write_table(
        &lost_path,
        "lost_events",
        &lost_batch,
        opts.zstd_level,
        &meta,
    )?;
    let manifest = Manifest {
        schema_version: SCHEMA_VERSION.into(),
        created_by: concat!("kreq ", env!("CARGO_PKG_VERSION")).into(),
        trace_clock: clock,
        kernel: opts.kernel.clone().or(uname_kernel),
        host: opts.host.clone().or(uname_host),
        boot_id: None,
        epoch_offset_ns: None,
        events: total_events,
        lost_events: lost.iter().filter_map(|(_, r)| r.count).sum(),
        time_range_ns: range,
        sorted,
        sources,
        correlation: None,
    };
    write_manifest(&opts.output, &manifest)?;
    Ok(IngestReport {
        manifest,
        malformed,
        parquet_bytes,
    })
}
