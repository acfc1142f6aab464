//! Correlation on the bundled real captures, scored against their ground truth.

use std::path::{Path, PathBuf};

use kreq_correlate::dataset::{correlate, Options, Summary};
use kreq_correlate::eval::{evaluate, read_truth, Score};
use kreq_ingest::{ingest, IngestOptions, NoProgress};

fn testdata() -> PathBuf {
    kreq_testkit::testdata()
}

fn ingested(input: &Path) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut opts = IngestOptions::new(dir.path().join("ds"));
    opts.trace_clock = Some("mono".into());
    opts.threads = 1;
    ingest(&[input.to_owned()], &opts, &NoProgress).expect("ingest");
    dir
}

/// The text of a bundled capture (`testdata/NAME/trace.txt.zst`).
fn capture_text(name: &str) -> String {
    let path = testdata().join(name).join("trace.txt.zst");
    let text = zstd::decode_all(std::fs::File::open(&path).expect("open")).expect("zstd");
    String::from_utf8(text).expect("utf8")
}

/// `lines` ingested as a trace file, like [`ingested`].
fn ingested_lines<T: std::fmt::Display>(lines: impl IntoIterator<Item = T>) -> tempfile::TempDir {
    use std::io::Write;
    let input = tempfile::NamedTempFile::new().expect("input file");
    let mut f = std::io::BufWriter::new(input.as_file());
    for l in lines {
        writeln!(f, "{l}").expect("write");
    }
    f.flush().expect("flush");
    drop(f);
    ingested(input.path())
}

fn run(input: &Path, truth: &Path) -> (Summary, Score, tempfile::TempDir) {
    let dir = ingested(input);
    let ds = dir.path().join("ds");
    let summary = correlate(&ds, &Options::default()).expect("correlate");
    let score = evaluate(&ds, &read_truth(truth).expect("truth")).expect("eval");
    (summary, score, dir)
}

fn check_capture(name: &str, file: &str) {
    let (summary, score, _dir) = run(
        &testdata().join(name).join(file),
        &testdata().join(name).join("truth.jsonl"),
    );
    eprintln!("{name}/{file}: {score:?}");
    assert_eq!(
        summary.ingress,
        ["127.0.0.1:18080"],
        "{name}: detected ingress"
    );
    assert!(summary.ingress_auto);
    assert_eq!(score.found, score.sent, "{name}: {score:?}");
    assert!(score.accuracy >= 0.99, "{name}: {score:?}");
    assert_eq!(
        summary.stats.requests as usize, score.sent,
        "{name}: no extra requests"
    );
    assert_eq!(summary.incomplete, 0, "{name} has no lost events");
    check_time_split(&_dir.path().join("ds"), name);
}

/// Every span's on-CPU, runnable, blocked and unknown time is >= 0 and adds up to its
/// duration, and the blocked reasons add up to the blocked time (the `spans` contract).
fn check_time_split(ds: &Path, name: &str) {
    use arrow::array::{AsArray, Int64Array};
    let batches = kreq_correlate::read_table(&ds.join("spans")).expect("spans");
    let mut checked = 0;
    for b in &batches {
        let col = |n: &str| -> &Int64Array {
            b.column_by_name(n)
                .unwrap_or_else(|| panic!("column {n}"))
                .as_primitive()
        };
        let dur = col("duration_ns");
        let parts = ["cpu_ns", "runnable_ns", "blocked_ns", "unknown_ns"].map(col);
        let reasons = [
            "blocked_network_ns",
            "blocked_disk_ns",
            "blocked_lock_ns",
            "blocked_other_ns",
        ]
        .map(col);
        for i in 0..b.num_rows() {
            let v: Vec<i64> = parts.iter().map(|c| c.value(i)).collect();
            let r: Vec<i64> = reasons.iter().map(|c| c.value(i)).collect();
            assert!(
                v.iter().chain(&r).all(|&x| x >= 0),
                "{name}: negative time in span row {i}: {v:?} {r:?}"
            );
            assert_eq!(v.iter().sum::<i64>(), dur.value(i), "{name}: row {i} {v:?}");
            assert_eq!(r.iter().sum::<i64>(), v[2], "{name}: row {i} reasons {r:?}");
            checked += 1;
        }
    }
    assert!(checked > 0, "{name}: no spans");
}

#[test]
fn s1_one_connection() {
    check_capture("s1-c1", "trace.txt.zst");
}

#[test]
fn s2_four_keep_alive_connections() {
    check_capture("s2-c4", "trace.txt.zst");
}

#[test]
fn s3_eight_connections_two_app_instances() {
    check_capture("s3-c8-2apps", "trace.txt.zst");
}

#[test]
fn t0_trace_cmd_report_text() {
    check_capture("t0-tracecmd", "report.txt.zst");
}

#[test]
fn t0_binary_trace_dat() {
    check_capture("t0-tracecmd", "trace.dat");
}

mod midstream;
mod tables;
