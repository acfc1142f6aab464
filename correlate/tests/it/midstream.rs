//! A recording that starts in the middle of traffic: its first reads take bytes sent before
//! it began. Those bytes must not shift later messages onto the wrong requests.

use std::io::Write;

use kreq_correlate::dataset::{correlate, Options};
use kreq_correlate::eval::{evaluate, read_truth};
use kreq_ingest::{ingest, IngestOptions, NoProgress};

use crate::testdata;

#[test]
fn a_recording_started_mid_traffic_keeps_later_requests_exact() {
    let text = zstd::decode_all(
        std::fs::File::open(testdata().join("s2-c4/trace.txt.zst")).expect("open"),
    )
    .expect("zstd");
    let text = String::from_utf8(text).expect("utf8");
    let lines: Vec<&str> = text.lines().collect();
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("late-start.txt");
    let mut f = std::fs::File::create(&input).expect("create");
    // Drop the first 45%: connections are open and messages are in flight at the cut.
    for l in &lines[lines.len() * 45 / 100..] {
        writeln!(f, "{l}").expect("write");
    }
    drop(f);
    let ds = dir.path().join("ds");
    let mut opts = IngestOptions::new(&ds);
    opts.trace_clock = Some("mono".into());
    opts.threads = 1;
    let report = ingest(&[input], &opts, &NoProgress).expect("ingest");
    let s = correlate(&ds, &Options::default()).expect("correlate");
    // Bytes of the messages in flight at the cut, not a message per later exchange (before
    // the rule: 7,161 bytes, every later message on those connections shifted by one).
    assert!(
        (1..1_000).contains(&s.stats.unseen_bytes),
        "unseen bytes: {}",
        s.stats.unseen_bytes
    );
    let first = report
        .manifest
        .time_range_ns
        .map(|(lo, _)| lo)
        .expect("time range");
    let truth: Vec<_> = read_truth(&testdata().join("s2-c4/truth.jsonl"))
        .expect("truth")
        .into_iter()
        .filter(|t| t.client_t0 > first + 1_000_000)
        .collect();
    assert!(truth.len() > 150, "{} requests after the cut", truth.len());
    let score = evaluate(&ds, &truth).expect("eval");
    assert_eq!(score.exact, score.sent, "{score:?}");
}
