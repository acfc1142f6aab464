//! What correlation writes: labels consistent with the tables, idempotent reruns, the lost
//! events flag, and an evaluation that does fail when the correlation is wrong.

use std::collections::HashSet;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::UInt64Type;
use kreq_correlate::dataset::{correlate, read_manifest, Options};
use kreq_correlate::eval::{evaluate, read_truth, Truth};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::*;

fn table(ds: &Path, name: &str) -> Vec<RecordBatch> {
    let mut files: Vec<_> = std::fs::read_dir(ds.join(name))
        .expect("table dir")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    files
        .into_iter()
        .flat_map(|p| {
            let f = std::fs::File::open(p).expect("open");
            ParquetRecordBatchReaderBuilder::try_new(f)
                .expect("parquet")
                .build()
                .expect("reader")
                .map(|b| b.expect("batch"))
                .collect::<Vec<_>>()
        })
        .collect()
}

fn u64s(batches: &[RecordBatch], col: &str) -> Vec<Option<u64>> {
    prims::<UInt64Type>(batches, col)
}

/// Text column `col` (plain or dictionary) across `batches`.
fn texts(batches: &[RecordBatch], col: &str) -> Vec<String> {
    batches
        .iter()
        .flat_map(|b| {
            let a = arrow::compute::cast(
                b.column_by_name(col).expect(col),
                &arrow::datatypes::DataType::Utf8,
            )
            .expect("cast");
            let a = a.as_string::<i32>().clone();
            (0..a.len()).map(move |i| a.value(i).to_owned())
        })
        .collect()
}

/// Column `col` of a primitive type across `batches`, nulls as `None`.
fn prims<T: arrow::datatypes::ArrowPrimitiveType>(
    batches: &[RecordBatch],
    col: &str,
) -> Vec<Option<T::Native>> {
    batches
        .iter()
        .flat_map(|b| {
            let a = b
                .column_by_name(col)
                .expect(col)
                .as_primitive::<T>()
                .clone();
            (0..a.len()).map(move |i| a.is_valid(i).then(|| a.value(i)))
        })
        .collect()
}

#[test]
fn labels_point_at_spans_and_reruns_give_the_same_result() {
    let dir = ingested(&testdata().join("s1-c1/trace.txt.zst"));
    let ds = dir.path().join("ds");
    let first = correlate(&ds, &Options::default()).expect("correlate");
    let events = table(&ds, "events");
    let reqs = u64s(&events, "request_id");
    let spans_col = u64s(&events, "span_id");
    let labelled = reqs.iter().flatten().count() as u64;
    assert!(labelled > 0);
    assert_eq!(labelled, first.stats.labelled);
    assert!(reqs
        .iter()
        .zip(&spans_col)
        .all(|(r, s)| r.is_some() == s.is_some()));
    let span_ids: HashSet<u64> = u64s(&table(&ds, "spans"), "span_id")
        .into_iter()
        .flatten()
        .collect();
    assert!(
        spans_col.iter().flatten().all(|s| span_ids.contains(s)),
        "every label names a written span"
    );
    let request_ids: HashSet<u64> = u64s(&table(&ds, "requests"), "request_id")
        .into_iter()
        .flatten()
        .collect();
    assert_eq!(request_ids.len() as u64, first.stats.requests);
    let m = read_manifest(&ds).expect("manifest");
    let info = m.correlation.expect("correlation info");
    assert_eq!(info.requests, first.stats.requests);
    assert_eq!(info.labelled_events, labelled);
    let edges = table(&ds, "edges");
    let n_edges: usize = edges.iter().map(|b| b.num_rows()).sum();
    assert_eq!(n_edges as u64, first.stats.edges);

    let second = correlate(&ds, &Options::default()).expect("rerun");
    assert_eq!(second.stats, first.stats);
    assert_eq!(u64s(&table(&ds, "events"), "request_id"), reqs);
}

#[test]
fn given_ingress_is_used_and_a_wrong_one_finds_nothing() {
    let dir = ingested(&testdata().join("s1-c1/trace.txt.zst"));
    let ds = dir.path().join("ds");
    let opts = |s: &str| Options {
        ingress: vec![s.to_owned()],
        ..Options::default()
    };
    let s = correlate(&ds, &opts(":18080")).expect("correlate");
    assert!(!s.ingress_auto);
    assert_eq!(s.stats.requests, 100);
    let s = correlate(&ds, &opts("127.0.0.1:9")).expect("correlate");
    assert_eq!(s.stats.requests, 0);
    assert!(correlate(&ds, &opts("no-port")).is_err());
}

#[test]
fn lost_events_mark_the_requests_they_touch_incomplete() {
    let text = capture_text("s1-c1");
    let lines: Vec<&str> = text.lines().collect();
    let mid = lines.len() / 2;
    let lost = ["CPU:0 [LOST 42 EVENTS]", "CPU:1 [LOST 42 EVENTS]"];
    let dir = ingested_lines(lines[..mid].iter().chain(&lost).chain(&lines[mid..]));
    let out = dir.path().join("ds");
    let s = correlate(&out, &Options::default()).expect("correlate");
    assert_eq!(s.stats.requests, 100);
    assert!(
        (1..=3).contains(&s.incomplete),
        "a loss at one instant touches the one or two requests in flight, not all: {}",
        s.incomplete
    );
    let complete: Vec<bool> = table(&out, "requests")
        .iter()
        .flat_map(|b| {
            let a = b
                .column_by_name("complete")
                .expect("complete")
                .as_boolean()
                .clone();
            (0..a.len()).map(move |i| a.value(i))
        })
        .collect();
    assert_eq!(
        complete.iter().filter(|c| !**c).count() as u64,
        s.incomplete
    );
}

#[test]
fn evaluation_fails_a_correlation_that_does_not_match_the_truth() {
    let name = "s2-c4";
    let dir = ingested(&testdata().join(name).join("trace.txt.zst"));
    let ds = dir.path().join("ds");
    correlate(&ds, &Options::default()).expect("correlate");
    let truth = read_truth(&testdata().join(name).join("truth.jsonl")).expect("truth");
    assert!(evaluate(&ds, &truth).expect("eval").accuracy >= 0.99);
    // Give every request the application hop of the request before it: a correlation that
    // is right for the truth must now be wrong for nearly every request.
    let mut shifted: Vec<Truth> = truth.clone();
    for (i, t) in shifted.iter_mut().enumerate() {
        let next = &truth[(i + 1) % truth.len()];
        t.app_tid = next.app_tid;
        t.app_t0 = next.app_t0;
        t.app_t1 = next.app_t1;
    }
    let s = evaluate(&ds, &shifted).expect("eval");
    assert!(s.accuracy < 0.05, "{s:?}");
    assert!(
        s.failures
            .contains_key("application span of another request"),
        "{s:?}"
    );
}

#[test]
fn bad_truth_lines_name_file_line_and_offset() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("truth.jsonl");
    std::fs::write(
        &p,
        "{\"request_id\":\"a\",\"client_tid\":1,\"client_t0\":1,\"client_t1\":2}\nnot json\n",
    )
    .expect("write");
    let e = read_truth(&p).expect_err("bad line").to_string();
    assert!(e.contains("truth.jsonl:2: byte 62:"), "{e}");
}

/// Self times: a request's hops add up to its duration, none is negative, and each hop's
/// split of its own time is within it.
#[test]
fn self_times_add_up_to_each_requests_duration() {
    let i64s = |batches: &[RecordBatch], col: &str| -> Vec<i64> {
        prims::<arrow::datatypes::Int64Type>(batches, col)
            .into_iter()
            .map(|v| v.expect("not null"))
            .collect()
    };
    let dir = ingested(&testdata().join("s2-c4/trace.txt.zst"));
    let ds = dir.path().join("ds");
    correlate(&ds, &Options::default()).expect("correlate");
    let spans = table(&ds, "spans");
    let reqs = table(&ds, "requests");
    let (req_of, selfs, cpu) = (
        u64s(&spans, "request_id"),
        i64s(&spans, "self_ns"),
        i64s(&spans, "self_cpu_ns"),
    );
    let kinds = texts(&spans, "kind");
    let parts: Vec<Vec<i64>> = [
        "self_runnable_ns",
        "self_blocked_network_ns",
        "self_blocked_disk_ns",
        "self_blocked_lock_ns",
        "self_blocked_other_ns",
    ]
    .iter()
    .map(|c| i64s(&spans, c))
    .collect();
    let mut sum: std::collections::HashMap<u64, i64> = Default::default();
    for (i, ((r, s), (k, c))) in req_of
        .iter()
        .zip(&selfs)
        .zip(kinds.iter().zip(&cpu))
        .enumerate()
    {
        assert!(*s >= 0, "negative self time {s} {k} request {r:?}");
        // The split of a hop's own time: for a client span, what the threads at its two ends
        // did while its bytes were on their way.
        let split: Vec<i64> = std::iter::once(*c)
            .chain(parts.iter().map(|p| p[i]))
            .collect();
        assert!(
            split.iter().all(|&v| v >= 0),
            "{k} request {r:?}: {split:?}"
        );
        assert!(
            split.iter().sum::<i64>() <= *s,
            "{k} request {r:?}: split {split:?} over self time {s}"
        );
        *sum.entry(r.expect("request id")).or_default() += s;
    }
    let ids = u64s(&reqs, "request_id");
    let durations = i64s(&reqs, "duration_ns");
    assert_eq!(ids.len(), 300);
    for (id, d) in ids.iter().zip(&durations) {
        let id = id.expect("id");
        assert_eq!(sum.get(&id).copied(), Some(*d), "request {id}");
    }
}

/// Capture `v6-dualstack`: a server on `[::]` with one IPv4 and one IPv6 client, five
/// exchanges each. An IPv6 socket's `inet_sock_set_state` and `tcp_rcv_space_adjust` carry its
/// address only in `saddr_v6` (the IPv4 fields say `0.0.0.0` or `127.0.0.6`), and `tcp_probe`
/// names an IPv4 peer of a dual-stack socket `::ffff:127.0.0.1`: both sides of each connection
/// must still be one connection, so every exchange is a request sent by the main thread.
#[test]
fn ipv6_and_ipv4_mapped_peers_are_one_connection_each() {
    let dir = ingested(&testdata().join("v6-dualstack/trace.txt.zst"));
    let ds = dir.path().join("ds");
    let opts = Options {
        ingress: vec![":29601".to_owned()],
        ..Options::default()
    };
    let summary = correlate(&ds, &opts).expect("correlate");
    assert_eq!(summary.stats.unseen_bytes, 0, "{:?}", summary.stats);
    let reqs = table(&ds, "requests");
    let tids = prims::<arrow::datatypes::Int32Type>(&reqs, "client_tid");
    assert_eq!(tids.len(), 10, "two clients, five exchanges each");
    assert!(tids.iter().all(Option::is_some), "{tids:?}");
    let mut addrs = texts(&reqs, "client_addr");
    addrs.sort();
    addrs.dedup();
    assert_eq!(addrs, ["127.0.0.1", "::1"]);
}

/// An events part of another schema than this kreq's keeps, when correlation labels it, the
/// columns it was written with and its schema version: one of schema 5 (no `op` and `utime`
/// columns; it holds those fields in its map) is not given columns of nulls, and a column
/// this kreq does not know (a later schema's) is kept.
#[test]
fn labelling_keeps_a_parts_own_columns_and_schema_version() {
    use kreq_schemas::{events, SCHEMA_VERSION_KEY};
    let dir = ingested(&testdata().join("v6-dualstack/trace.txt.zst"));
    let ds = dir.path().join("ds");
    let part = ds.join("events/part-000000.parquet");
    let batches = table(&ds, "events");
    let schema = batches[0].schema();
    let keep: Vec<usize> = (0..schema.fields().len())
        .filter(|&i| ![events::OP, events::UTIME].contains(&schema.field(i).name().as_str()))
        .collect();
    let mut rows = 0;
    let edited: Vec<RecordBatch> = batches
        .iter()
        .map(|b| {
            let b = b.project(&keep).expect("project");
            let later =
                arrow::array::Int32Array::from_iter_values(rows..rows + b.num_rows() as i32);
            rows += b.num_rows() as i32;
            let mut fields = b.schema().fields().to_vec();
            fields.push(std::sync::Arc::new(arrow::datatypes::Field::new(
                "later",
                arrow::datatypes::DataType::Int32,
                false,
            )));
            let mut cols = b.columns().to_vec();
            cols.push(std::sync::Arc::new(later));
            let schema = arrow::datatypes::Schema::new(fields);
            RecordBatch::try_new(std::sync::Arc::new(schema), cols).expect("batch")
        })
        .collect();
    let out_schema = edited[0].schema();
    kreq_schemas::writer::write_parquet(
        &part,
        "events",
        out_schema,
        edited.into_iter().map(Ok::<_, std::convert::Infallible>),
        3,
        &[(SCHEMA_VERSION_KEY.to_owned(), "5".to_owned())],
    )
    .expect("write");
    let opts = Options {
        ingress: vec![":29601".to_owned()],
        ..Options::default()
    };
    correlate(&ds, &opts).expect("correlate");
    let after = table(&ds, "events");
    let s = after[0].schema();
    assert!(s.field_with_name(events::OP).is_err() && s.field_with_name(events::UTIME).is_err());
    let later = prims::<arrow::datatypes::Int32Type>(&after, "later");
    assert_eq!(later, (0..rows).map(Some).collect::<Vec<_>>());
    assert!(u64s(&after, events::REQUEST_ID).iter().any(Option::is_some));
    let f = std::fs::File::open(&part).expect("part");
    let meta = ParquetRecordBatchReaderBuilder::try_new(f).expect("parquet");
    let version = meta
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .and_then(|kv| {
            kv.iter()
                .find(|k| k.key == SCHEMA_VERSION_KEY)?
                .value
                .clone()
        });
    assert_eq!(version.as_deref(), Some("5"));
    assert_eq!(
        table(&ds, "requests")
            .iter()
            .map(|b| b.num_rows())
            .sum::<usize>(),
        10
    );
}
