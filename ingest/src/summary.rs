//! What an ingest run wrote: line numbers across parts, totals, and the dataset manifest.

use kreq_schemas::dataset::{self, Manifest, SourceSummary};
use kreq_schemas::{events, lost_events, SCHEMA_VERSION};

use crate::chunk::LostReport;
use crate::error::Result;
use crate::output::write_manifest;
use crate::pipeline::{IngestOptions, IngestReport};
use crate::sink::{lost_events_batch, write_table};
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

/// Smallest and largest `ts_ns` of an events batch.
pub(crate) fn time_range(batch: &arrow::record_batch::RecordBatch) -> Option<(i64, i64)> {
    let ts = batch
        .column_by_name(events::TS_NS)?
        .as_any()
        .downcast_ref::<arrow::array::Int64Array>()?;
    arrow::compute::min(ts).zip(arrow::compute::max(ts))
}

/// Metadata of every part file written for `source`.
pub(crate) fn part_metadata(
    opts: &IngestOptions,
    source: &str,
    clock: &str,
) -> Vec<(String, String)> {
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

/// Total the parts (in input order), write the `lost_events` table and the manifest.
pub(crate) fn finish(
    results: Vec<Done>,
    mut sources: Vec<SourceSummary>,
    opts: &IngestOptions,
    mut clock: String,
) -> Result<IngestReport> {
    let names: Vec<String> = sources.iter().map(|s| s.path.clone()).collect();
    let mut lost: Vec<(&str, LostReport)> = Vec::new();
    let mut malformed = Vec::new();
    let mut parquet_bytes = 0;
    let mut parts_sorted_whole = 0;
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
        parts_sorted_whole += u64::from(d.sorted_whole);
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
        let path = dataset::part_path(&opts.output, kreq_schemas::table::EVENTS.name, 0);
        parquet_bytes += write_table(
            &path,
            kreq_schemas::table::EVENTS.name,
            &empty,
            opts.zstd_level,
            &meta,
        )?;
    }
    let lost_batch = lost_events_batch(&lost)?;
    debug_assert_eq!(lost_batch.schema(), lost_events::schema());
    let lost_path = dataset::part_path(&opts.output, kreq_schemas::table::LOST_EVENTS.name, 0);
    parquet_bytes += write_table(
        &lost_path,
        kreq_schemas::table::LOST_EVENTS.name,
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
        parts_sorted_whole,
        truncated: Vec::new(),
    })
}
