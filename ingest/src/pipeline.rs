//! `kreq ingest`: inputs -> parts -> parallel parse and Parquet write -> dataset directory.
//!
//! A plain text file is cut into byte ranges, one per part, and each of `threads` workers reads
//! its own range; other inputs (stdin, zstd, gzip) are read and cut into whole-line chunks by
//! one reader thread (the caller's). Each worker parses its part a block at a time and streams
//! it into its own part file (see [`crate::text::part`]), so parsing and compression both scale with
//! threads and memory does not grow with the part size. Line numbers are fixed up once all parts
//! are in. The manifest is written last; every part file is complete when it appears.

use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::Mutex;

use kreq_schemas::dataset::SourceSummary;

use crate::dataset::DatasetWriter;
use crate::error::{Error, Result};
use crate::input::{chunk_size, open, read_rest, read_tracedat, Chunker};
use crate::options::{IngestOptions, IngestReport, Progress};
use crate::summary::{finish, number_lines};
use crate::text::detect_format;
use crate::tracedat::is_tracedat;
use crate::worker::{work, Done, Job, Payload};

/// Ingest `inputs` (paths; `-` is stdin) into the dataset at `opts.output`.
pub fn ingest(
    inputs: &[PathBuf],
    opts: &IngestOptions,
    progress: &dyn Progress,
) -> Result<IngestReport> {
    let writer = DatasetWriter::create(&opts.output, opts.force, opts.zstd_level)?;
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
    let mut truncated = Vec::new();

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
        // Hand a part to the workers; false once they are gone.
        let send = |seq: &mut u64, source: usize, payload: Payload| {
            let sent = job_tx.send(Job {
                seq: *seq,
                source,
                payload,
            });
            *seq += 1;
            sent.is_ok()
        };
        // Keep the parts finished so far; false when ingest should stop.
        let drain = |results: &mut Vec<Done>, first_error: &mut Option<Error>| {
            let mut go_on = true;
            while let Ok(done) = done_rx.try_recv() {
                go_on &= collect(done, opts.strict, results, first_error);
            }
            go_on
        };
        let mut seq = 0;
        'inputs: for (source, path) in inputs.iter().enumerate() {
            let input = match open(path) {
                Ok(r) => r,
                Err(e) => {
                    first_error = Some(Error::io(path, e));
                    break;
                }
            };
            if input.size.is_some() && is_tracedat(&input.head) {
                // A trace.dat on disk: read in place.
                let mut to_workers = |parsed| send(&mut seq, source, Payload::Decoded(parsed));
                let read = std::fs::File::open(path)
                    .and_then(crate::tracedat::DatBytes::file)
                    .map_err(|e| Error::io(path, e))
                    .and_then(|b| read_tracedat(path, b, &mut sources[source], &mut to_workers));
                match read {
                    Ok(true) => continue,
                    Ok(false) => break 'inputs,
                    Err(e) => {
                        first_error = Some(e);
                        break 'inputs;
                    }
                }
            }
            if let Some(size) = input.size {
                // A regular text file: each worker reads its own byte range.
                if !input.head.is_empty() {
                    sources[source].format = detect_format(&input.head).into();
                }
                sources[source].bytes = size;
                let chunk = chunk_size(Some(size), opts.chunk_bytes, opts.threads) as u64;
                let mut start = 0;
                while start < size {
                    let end = size.min(start + chunk);
                    if !send(&mut seq, source, Payload::Range(start, end, size)) {
                        break 'inputs;
                    }
                    start = end;
                    // Stop early in strict mode once a worker has reported a problem.
                    if !drain(&mut results, &mut first_error) {
                        break 'inputs;
                    }
                }
                continue;
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
                    Ok(None) => {
                        if let Some((at, e)) = chunker.truncated() {
                            sources[source].truncated_at = Some(at);
                            truncated.push((names[source].clone(), at, e.to_string()));
                        }
                        break;
                    }
                    Err(e) => {
                        first_error = Some(Error::io(path, e));
                        break 'inputs;
                    }
                };
                if offset == 0 && is_tracedat(&data) {
                    // A trace.dat from stdin or inside zstd/gzip: read into memory first.
                    let mut to_workers = |parsed| send(&mut seq, source, Payload::Decoded(parsed));
                    let summary = &mut sources[source];
                    let read = read_rest(path, data, &mut chunker)
                        .and_then(|b| read_tracedat(path, b, summary, &mut to_workers));
                    match read {
                        Ok(true) => break,
                        Ok(false) => break 'inputs,
                        Err(e) => {
                            first_error = Some(e);
                            break 'inputs;
                        }
                    }
                }
                if offset == 0 {
                    let inner = detect_format(&data);
                    sources[source].format = match input.wrapper {
                        Some(w) => format!("{}+{inner}", w.as_str()),
                        None => inner.into(),
                    };
                }
                let len = data.len() as u64;
                sources[source].bytes += len;
                let payload = Payload::Text(offset, data);
                offset += len;
                if !send(&mut seq, source, payload) {
                    break 'inputs;
                }
                if !drain(&mut results, &mut first_error) {
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
    // An input with no event at all is refused as not a trace (naming its format) before
    // `--strict` would name its first unparsed line.
    let writer = refuse_empty_sources(writer, &results, &sources)?;
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
    let mut report = finish(writer, results, sources, opts, clock)?;
    report.truncated = truncated;
    Ok(report)
}

/// An input that yielded no event is not a trace: the whole ingest is refused, and what it
/// wrote (part files, then the dataset's folders and the dataset itself if left empty) is
/// removed, so no dataset of 0 events is left to be mistaken for an empty recording.
fn refuse_empty_sources(
    writer: DatasetWriter,
    results: &[Done],
    sources: &[SourceSummary],
) -> Result<DatasetWriter> {
    let mut events = vec![0u64; sources.len()];
    let mut malformed = vec![0u64; sources.len()];
    for d in results {
        events[d.source] += d.file.rows;
        malformed[d.source] += d.parsed.malformed_count;
    }
    let Some(i) = events.iter().position(|&n| n == 0) else {
        return Ok(writer);
    };
    writer.discard(results.iter().filter_map(|d| d.part.clone()));
    let s = &sources[i];
    let format = match s.format.as_str() {
        "" => "none".to_owned(),
        crate::text::LATENCY => "the latency tracers' text (irqsoff, wakeup, ...), which kreq \
            does not decode: record events instead (trace-cmd record -e, kreq record)"
            .to_owned(),
        crate::text::FUNCTION_GRAPH => "the function_graph tracer's text, which kreq does not \
            decode: record its funcgraph_entry/funcgraph_exit events with trace-cmd instead"
            .to_owned(),
        f => f.to_owned(),
    };
    Err(Error::NotATrace {
        path: s.path.clone(),
        format,
        lines: s.lines,
        malformed: malformed[i],
    })
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
