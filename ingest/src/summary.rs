//! What an ingest run wrote: line numbers across parts, totals, and the dataset manifest.

use kreq_schemas::dataset::SourceSummary;

use crate::dataset::{file_metadata, DatasetWriter};
use crate::error::Result;
use crate::options::{IngestOptions, IngestReport};
use crate::rows::LostReport;
use crate::worker::Done;

/// Parts number their lines from 1; once all are in (in input order), make line numbers count
/// from the start of each input and total the lines per input.
pub(crate) fn number_lines(results: &mut [Done], sources: &mut [SourceSummary]) {
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

/// Total the parts (in input order) into `writer`, then close the dataset: the
/// `lost_events` table and the manifest.
pub(crate) fn finish(
    mut writer: DatasetWriter,
    results: Vec<Done>,
    mut sources: Vec<SourceSummary>,
    opts: &IngestOptions,
    mut clock: String,
) -> Result<IngestReport> {
    let names: Vec<String> = sources.iter().map(|s| s.path.clone()).collect();
    let mut malformed = Vec::new();
    let mut parts_sorted_whole = 0;
    let mut last_ts_of_source: Vec<Option<i64>> = vec![None; sources.len()];
    let mut counter = false;
    for d in results {
        let s = &mut sources[d.source];
        s.events += d.file.rows;
        s.lost_reports += d.parsed.lost.len() as u64;
        s.malformed += d.parsed.malformed_count;
        s.parts.extend(d.part);
        writer.add_part(&d.file);
        parts_sorted_whole += u64::from(d.sorted_whole);
        counter |= d.parsed.counter_clock;
        // A report between two events is timed by the event before it, across parts.
        let last = last_ts_of_source[d.source];
        let lost = d.parsed.lost.into_iter().map(|r| LostReport {
            ts_ns: r.ts_ns.or(last),
            ..r
        });
        writer.add_lost(&names[d.source], lost);
        if d.parsed.last_ts.is_some() {
            last_ts_of_source[d.source] = d.parsed.last_ts;
        }
        let name = &names[d.source];
        malformed.extend(d.parsed.malformed.into_iter().map(|m| (name.clone(), m)));
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
    let meta = file_metadata("", &clock, opts.kernel.as_deref(), opts.host.as_deref());
    let m = writer.manifest_mut();
    m.trace_clock = clock;
    m.kernel = opts.kernel.clone().or(uname_kernel);
    m.host = opts.host.clone().or(uname_host);
    m.sources = sources;
    let done = writer.finish(&meta)?;
    Ok(IngestReport {
        manifest: done.manifest,
        malformed,
        parquet_bytes: done.parquet_bytes,
        parts_sorted_whole,
        truncated: Vec::new(),
    })
}
