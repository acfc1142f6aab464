//! The whole ingest pipeline on real captures and on hand-made edge cases.

use std::io::Write;
use std::path::PathBuf;

use arrow::array::RecordBatchReader;
use arrow::array::{Array, AsArray, Int64Array, RecordBatch};
use arrow::datatypes::{Int32Type, UInt64Type};
use kreq_ingest::{ingest, Error, IngestOptions, NoProgress};
use kreq_schemas::{events, lost_events};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::snapshots::testdata;

fn tmp(name: &str) -> PathBuf {
    let p = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&p);
    p
}

fn read_table(dir: &std::path::Path) -> RecordBatch {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("table dir")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    let mut batches = Vec::new();
    let mut schema = None;
    for f in files {
        let file = std::fs::File::open(&f).expect("part");
        let r = ParquetRecordBatchReaderBuilder::try_new(file)
            .expect("parquet")
            .build()
            .expect("reader");
        schema = Some(r.schema());
        for b in r {
            batches.push(b.expect("batch"));
        }
    }
    arrow::compute::concat_batches(&schema.expect("a file"), &batches).expect("concat")
}

#[test]
fn real_capture_round_trips_with_typed_columns() {
    let out = tmp("s1");
    let mut opts = IngestOptions::new(&out);
    opts.trace_clock = Some("mono".into());
    let input = testdata("s1-c1/trace.txt.zst");
    let report = ingest(&[input], &opts, &NoProgress).expect("ingest");
    let m = &report.manifest;
    assert_eq!(m.events, 18474);
    assert_eq!(m.sources[0].malformed, 0);
    assert_eq!(m.trace_clock, "mono");
    assert!(m.sorted);
    let b = read_table(&out.join(kreq_schemas::table::EVENTS.name));
    assert_eq!(b.num_rows(), 18474);
    assert_eq!(b.schema(), events::schema());
    let ts = b
        .column_by_name(events::TS_NS)
        .expect("ts")
        .as_primitive::<arrow::datatypes::Int64Type>();
    assert!(ts.values().windows(2).all(|w| w[0] <= w[1]));
    // Every sched_switch has both tids; every sock_send_length has a socket and a length.
    let names = b
        .column_by_name(events::EVENT)
        .expect("event")
        .as_dictionary::<Int32Type>();
    let dict = names.values().as_string::<i32>();
    let next = b.column_by_name(events::NEXT_TID).expect("next_tid");
    let sk = b
        .column_by_name(events::SK_ADDR)
        .expect("sk")
        .as_primitive::<UInt64Type>();
    let len = b.column_by_name(events::LENGTH).expect("len");
    let (mut switches, mut sends) = (0, 0);
    for row in 0..b.num_rows() {
        match dict.value(names.keys().value(row) as usize) {
            "sched_switch" => {
                switches += 1;
                assert!(next.is_valid(row));
            }
            "sock_send_length" => {
                sends += 1;
                assert!(sk.is_valid(row) && sk.value(row) != 0 && len.is_valid(row));
            }
            _ => {}
        }
    }
    assert!(switches > 1000 && sends > 500, "{switches} {sends}");
    let lost = read_table(&out.join(kreq_schemas::table::LOST_EVENTS.name));
    assert_eq!((lost.num_rows(), lost.schema()), (0, lost_events::schema()));
}

fn write(dir: &std::path::Path, name: &str, text: &str) -> PathBuf {
    std::fs::create_dir_all(dir).expect("dir");
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write");
    p
}

// The `\` continuations drop leading spaces, so these event lines take the slow prefix path.
const EDGE: &str = "# tracer: nop\n\
            bash-1  [000] ..... 1.000001: sys_read(fd: 3, buf: 0x7f, count: 0x10)\n\
CPU:1 [LOST 42 EVENTS]\n\
this line is garbage\n\
            bash-1  [000] ..... 1.000003: sys_read -> 0xfffffffffffffff5\n";

#[test]
fn lost_reports_malformed_lines_and_negative_returns() {
    let dir = tmp("edge");
    let input = write(&dir, "in.txt", EDGE);
    let out = dir.join("ds");
    let report = ingest(
        std::slice::from_ref(&input),
        &IngestOptions::new(&out),
        &NoProgress,
    )
    .expect("ingest");
    let m = &report.manifest;
    assert_eq!(
        (m.events, m.lost_events, m.sources[0].malformed),
        (2, 42, 1)
    );
    let (file, bad) = &report.malformed[0];
    assert_eq!(
        (file.as_str(), bad.line, bad.offset),
        (input.to_str().unwrap_or(""), 4, 107)
    );
    let b = read_table(&out.join(kreq_schemas::table::EVENTS.name));
    let ret = b
        .column_by_name(events::RET)
        .expect("ret")
        .as_primitive::<arrow::datatypes::Int64Type>();
    assert_eq!(ret.value(1), -11);
    let lost = read_table(&out.join(kreq_schemas::table::LOST_EVENTS.name));
    let ts = lost
        .column(0)
        .as_any()
        .downcast_ref::<Int64Array>()
        .expect("ts");
    assert_eq!((lost.num_rows(), ts.value(0)), (1, 1_000_001_000));
}

#[test]
fn futex_op_and_timeout_are_typed_columns_in_both_text_forms() {
    // A CPython pool worker's `sem_wait` (op 0x189, no timeout) in the short form trace_pipe
    // prints for syscalls, and its GIL wait (op 0x89, timed) in the `0x%08lx` form of the
    // event's own format; a `sys_read` has no `op`.
    let text = "\
 python3-7 [000] ..... 1.000001: sys_futex(uaddr: 0x7f71b5b6da4c, op: 0x189, val: 0, utime: 0, uaddr2: 0, val3: 0xffffffff)
 python3-8 [001] ..... 1.000002: sys_enter_futex: uaddr: 0x7f3aba088c88, op: 0x00000089, val: 0xffffffff, utime: 0x7ffe1547c6c0, uaddr2: 0x00000000, val3: 0x00000000
 python3-8 [001] ..... 1.000003: sys_read(fd: 3, buf: 0x7f, count: 0x10)
";
    let dir = tmp("futex");
    let input = write(&dir, "in.txt", text);
    let out = dir.join("ds");
    ingest(&[input], &IngestOptions::new(&out), &NoProgress).expect("ingest");
    let b = read_table(&out.join(kreq_schemas::table::EVENTS.name));
    let op = b
        .column_by_name(events::OP)
        .expect("op")
        .as_primitive::<arrow::datatypes::Int64Type>();
    let utime = b
        .column_by_name(events::UTIME)
        .expect("utime")
        .as_primitive::<UInt64Type>();
    assert_eq!(
        (0..3)
            .map(|i| op.is_valid(i).then(|| op.value(i)))
            .collect::<Vec<_>>(),
        [Some(393), Some(137), None]
    );
    assert_eq!(
        (0..3)
            .map(|i| utime.is_valid(i).then(|| utime.value(i)))
            .collect::<Vec<_>>(),
        [Some(0), Some(0x7ffe_1547_c6c0), None]
    );
    // Promoted fields leave the map; the others stay.
    let map = b.column_by_name(events::FIELDS).expect("fields").as_map();
    let keys = map.keys().as_string::<i32>();
    let first: Vec<&str> = (map.value_offsets()[0]..map.value_offsets()[1])
        .map(|j| keys.value(j as usize))
        .collect();
    assert_eq!(first, ["uaddr", "val", "uaddr2", "val3"]);
}

#[test]
fn strict_mode_names_file_line_and_offset() {
    let dir = tmp("strict");
    let input = write(&dir, "in.txt", EDGE);
    let mut opts = IngestOptions::new(dir.join("ds"));
    opts.strict = true;
    let err = ingest(&[input], &opts, &NoProgress).expect_err("strict must fail");
    assert!(
        matches!(
            err,
            Error::Malformed {
                line: 4,
                offset: 107,
                ..
            }
        ),
        "{err}"
    );
    let msg = err.to_string();
    assert!(msg.contains("in.txt:4: byte offset 107"), "{msg}");
}

#[test]
fn gzip_and_many_small_chunks_match_plain_text() {
    let dir = tmp("gz");
    let text = std::fs::read(testdata("s1-c1/trace.txt.zst")).expect("read");
    let plain = zstd::decode_all(&text[..]).expect("zstd");
    let gz_path = dir.join("t.txt.gz");
    std::fs::create_dir_all(&dir).expect("dir");
    let mut gz = flate2::write::GzEncoder::new(
        std::fs::File::create(&gz_path).expect("create"),
        flate2::Compression::fast(),
    );
    gz.write_all(&plain).expect("gz");
    gz.finish().expect("gz finish");
    let mut opts = IngestOptions::new(dir.join("ds"));
    opts.chunk_bytes = 100_000;
    opts.threads = 2;
    let report = ingest(&[gz_path], &opts, &NoProgress).expect("ingest");
    assert_eq!(report.manifest.events, 18474);
    assert!(report.manifest.sources[0].parts.len() > 20);
    assert!(report.manifest.sorted);
    assert_eq!(
        read_table(&dir.join("ds").join(kreq_schemas::table::EVENTS.name)).num_rows(),
        18474
    );
}

#[test]
fn refuses_to_overwrite_without_force() {
    let dir = tmp("exists");
    let input = write(&dir, "in.txt", EDGE);
    let out = dir.join("ds");
    ingest(
        std::slice::from_ref(&input),
        &IngestOptions::new(&out),
        &NoProgress,
    )
    .expect("first");
    let err = ingest(
        std::slice::from_ref(&input),
        &IngestOptions::new(&out),
        &NoProgress,
    )
    .expect_err("second");
    assert!(matches!(err, Error::OutputExists(_)));
    let mut opts = IngestOptions::new(&out);
    opts.force = true;
    ingest(&[input], &opts, &NoProgress).expect("forced");
}

#[test]
fn missing_input_is_a_clear_error() {
    let dir = tmp("missing");
    let err = ingest(
        &[dir.join("nope.txt")],
        &IngestOptions::new(dir.join("ds")),
        &NoProgress,
    )
    .expect_err("missing");
    assert!(err.to_string().contains("nope.txt"), "{err}");
}

#[test]
fn unsorted_input_is_sorted_within_parts() {
    let dir = tmp("unsorted");
    let text = "            bash-1  [000] ..... 2.000000: x: a=2\n            bash-1  [001] ..... 1.000000: x: a=1\n";
    let input = write(&dir, "in.txt", text);
    ingest(&[input], &IngestOptions::new(dir.join("ds")), &NoProgress).expect("ingest");
    assert_eq!(times(&dir.join("ds")), vec![1_000_000_000, 2_000_000_000]);
}

/// A capture as plain text, with `edit` applied to its lines.
fn plain(capture: &str, edit: impl Fn(usize, &str) -> String) -> String {
    let z = std::fs::read(testdata(&format!("{capture}/trace.txt.zst"))).expect("read");
    let text = String::from_utf8(zstd::decode_all(&z[..]).expect("zstd")).expect("utf8");
    text.lines()
        .enumerate()
        .map(|(i, l)| edit(i, l) + "\n")
        .collect()
}

#[test]
fn a_plain_file_read_in_ranges_by_workers_matches_one_part() {
    let dir = tmp("ranges");
    let text = plain("s1-c1", |_, l| l.to_owned());
    let input = write(&dir, "t.txt", &text);
    let mut one = IngestOptions::new(dir.join("one"));
    one.threads = 1;
    let single = ingest(std::slice::from_ref(&input), &one, &NoProgress).expect("one part");
    assert_eq!(single.manifest.sources[0].parts.len(), 1);
    let mut opts = IngestOptions::new(dir.join("many"));
    opts.chunk_bytes = 77_777;
    opts.threads = 2;
    let many = ingest(std::slice::from_ref(&input), &opts, &NoProgress).expect("ranges");
    assert!(many.manifest.sources[0].parts.len() > 20);
    assert!(many.manifest.sorted);
    assert_eq!(many.manifest.events, 18474);
    assert_eq!(many.manifest.sources[0].lines, text.lines().count() as u64);
    assert_eq!(many.manifest.sources[0].bytes, text.len() as u64);
    assert_eq!(
        read_table(&dir.join("many").join(kreq_schemas::table::EVENTS.name)),
        read_table(&dir.join("one").join(kreq_schemas::table::EVENTS.name))
    );
}

#[test]
fn line_numbers_and_offsets_count_from_the_start_of_the_input_in_every_part() {
    let dir = tmp("numbering");
    let bad = [700, 9_000, 17_001];
    let text = plain("s1-c1", |i, l| {
        if bad.contains(&i) {
            format!("garbage line {i}")
        } else {
            l.to_owned()
        }
    });
    let offset_of = |i: usize| -> u64 { text.lines().take(i).map(|l| l.len() as u64 + 1).sum() };
    let input = write(&dir, "t.txt", &text);
    for (threads, chunk) in [(1, 64 << 20), (2, 50_000)] {
        let mut opts = IngestOptions::new(dir.join(format!("ds-{chunk}")));
        opts.threads = threads;
        opts.chunk_bytes = chunk;
        let report = ingest(std::slice::from_ref(&input), &opts, &NoProgress).expect("ingest");
        let seen: Vec<(u64, u64)> = report
            .malformed
            .iter()
            .map(|(_, m)| (m.line, m.offset))
            .collect();
        let want: Vec<(u64, u64)> = bad.iter().map(|&i| (i as u64 + 1, offset_of(i))).collect();
        assert_eq!(seen, want, "chunk {chunk}");
        opts.strict = true;
        opts.force = true;
        let err = ingest(std::slice::from_ref(&input), &opts, &NoProgress).expect_err("strict");
        assert!(
            matches!(err, Error::Malformed { line: 701, offset, .. } if offset == offset_of(700)),
            "{err}"
        );
    }
}

#[test]
fn disorder_after_the_first_streamed_batch_sorts_the_whole_part() {
    let dir = tmp("late-disorder");
    // Line 40000 of s2-c4, batches past the first one written, moves 10 s back in time.
    const LINE: usize = 39_999;
    const { assert!(LINE > 2 * kreq_ingest::rows::BATCH_ROWS) };
    let text = plain("s2-c4", |i, l| {
        if i == LINE {
            let moved = l.replacen(" 2637.", " 2627.", 1);
            assert_ne!(moved, l);
            moved
        } else {
            l.to_owned()
        }
    });
    let input = write(&dir, "t.txt", &text);
    let mut opts = IngestOptions::new(dir.join("ds"));
    opts.threads = 1;
    let report = ingest(std::slice::from_ref(&input), &opts, &NoProgress).expect("ingest");
    assert_eq!(report.manifest.events, 47896);
    let events = dir.join("ds").join(kreq_schemas::table::EVENTS.name);
    let names: Vec<String> = std::fs::read_dir(&events)
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 1, "no partial file is left: {names:?}");
    let b = read_table(&events);
    let ts = b
        .column(0)
        .as_any()
        .downcast_ref::<Int64Array>()
        .expect("ts");
    assert!(ts.values().windows(2).all(|w| w[0] <= w[1]));
    assert_eq!(b.num_rows(), 47896);
}

/// Times of the dataset's events, in file order.
fn times(ds: &std::path::Path) -> Vec<i64> {
    let b = read_table(&ds.join(kreq_schemas::table::EVENTS.name));
    b.column(0)
        .as_any()
        .downcast_ref::<Int64Array>()
        .expect("ts")
        .values()
        .to_vec()
}

#[test]
fn late_lines_stream_and_far_late_lines_sort_the_part_whole() {
    // s2-c4 (47,896 events; 7.1 MB of text read in 1 MiB blocks, a batch taken once 16,384
    // rows are in, so 3 batches of about 21k rows in one part) with one line moved later:
    // from line 19,000 to 24,000, across the first batch boundary (within reach of the batch
    // held back), and to the end (older than rows already written).
    let dir = tmp("late-lines");
    let text = plain("s2-c4", |_, l| l.to_owned());
    let lines: Vec<&str> = text.lines().collect();
    let moved = |from: usize, to: usize| {
        let mut v = lines.clone();
        let l = v.remove(from);
        v.insert(to, l);
        v.join("\n") + "\n"
    };
    let one_part = |name: &str, text: &str| {
        let input = write(&dir, &format!("{name}.txt"), text);
        let mut opts = IngestOptions::new(dir.join(name));
        opts.threads = 1;
        let report = ingest(&[input], &opts, &NoProgress).expect("ingest");
        assert_eq!(report.manifest.sources[0].parts.len(), 1, "{name}");
        assert_eq!(report.manifest.events, 47896, "{name}");
        report.parts_sorted_whole
    };
    assert_eq!(one_part("orig", &text), 0);
    let expected = times(&dir.join("orig"));
    for (name, from, to, sorted_whole) in
        [("near", 19000, 24000, 0), ("far", 100, lines.len() - 1, 1)]
    {
        assert_eq!(one_part(name, &moved(from, to)), sorted_whole, "{name}");
        assert_eq!(
            times(&dir.join(name)),
            expected,
            "{name}: every event, in time order"
        );
    }
}

#[test]
fn a_real_capture_with_a_late_line_streams_in_time_order() {
    // testdata/t1-late: 25,000 lines of a testbed trace_pipe capture; line 21,914 (CPU 1,
    // 63647.328499) was printed after CPU 0 lines up to 63647.328560.
    let dir = tmp("real-late");
    let text = plain("t1-late", |_, l| l.to_owned());
    let input = write(&dir, "t.txt", &text);
    let mut opts = IngestOptions::new(dir.join("ds"));
    opts.threads = 1;
    let report = ingest(&[input], &opts, &NoProgress).expect("ingest");
    assert_eq!(report.manifest.events, 25000);
    assert_eq!(
        report.parts_sorted_whole, 0,
        "the late line is within reach"
    );
    let ts = times(&dir.join("ds"));
    assert!(ts.windows(2).all(|w| w[0] <= w[1]), "rows in time order");
    let late = 63_647_328_499_000;
    let at = ts
        .iter()
        .position(|&t| t == late)
        .expect("the late event is kept");
    assert!(at < 21913, "it moved back to its time, row {at}");
}

/// Systrace HTML (trace-data blocks, the legacy JavaScript string, inside zstd too) and
/// `atrace -z` are unwrapped like compressed input: each gives the same `events` as the
/// plain text its `SOURCES.md` says it holds (the `.extracted` file next to it), with no
/// line of the wrapper counted as malformed. The files are other tools' public traces, used
/// in place.
#[test]
fn wrapped_systrace_and_atrace_give_the_events_of_the_text_inside() {
    let test = "wrapped_systrace_and_atrace_give_the_events_of_the_text_inside";
    for &(wrapped, plain) in kreq_testkit::WRAPPED_TRACES {
        let (Some(w), Some(p)) = (
            kreq_testkit::skip::external(test, wrapped),
            kreq_testkit::skip::external(test, plain),
        ) else {
            return;
        };
        let run = |input: &PathBuf, name: &str| {
            let out = tmp(&format!("wrapped-{name}"));
            let mut opts = IngestOptions::new(&out);
            opts.threads = 1;
            let report = ingest(std::slice::from_ref(input), &opts, &NoProgress)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            (report, read_table(&out.join("events")))
        };
        let (wr, we) = run(&w, wrapped);
        let (pr, pe) = run(&p, plain);
        assert!(pr.manifest.events > 0, "{plain}");
        assert_eq!(wr.manifest.events, pr.manifest.events, "{wrapped}");
        assert_eq!(
            wr.manifest.sources[0].malformed, 0,
            "{wrapped}: {:?}",
            wr.malformed
        );
        assert_eq!(we, pe, "{wrapped}: the same rows as {plain}");
        let format = &wr.manifest.sources[0].format;
        assert!(
            format.starts_with("systrace-html+") || format.starts_with("atrace-z+"),
            "{wrapped}: {format}"
        );
    }
}
