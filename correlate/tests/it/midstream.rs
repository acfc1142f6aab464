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

#[test]
fn after_real_losses_every_request_marked_complete_is_exact() {
    let text = zstd::decode_all(
        std::fs::File::open(testdata().join("s2-c4/trace.txt.zst")).expect("open"),
    )
    .expect("zstd");
    let text = String::from_utf8(text).expect("utf8");
    let lines: Vec<&str> = text.lines().collect();
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("lossy.txt");
    let mut f = std::fs::File::create(&input).expect("create");
    // Five gaps of 1% of the events each, reported as trace_pipe reports them.
    let n = lines.len();
    let gap = |i: usize| (1..=5).any(|k| (k * n / 6..k * n / 6 + n / 100).contains(&i));
    for (i, l) in lines.iter().enumerate() {
        if gap(i) {
            if !gap(i + 1) {
                for cpu in 0..2 {
                    writeln!(f, "CPU:{cpu} [LOST {} EVENTS]", n / 200).expect("write");
                }
            }
            continue;
        }
        writeln!(f, "{l}").expect("write");
    }
    drop(f);
    let ds = dir.path().join("ds");
    let mut opts = IngestOptions::new(&ds);
    opts.trace_clock = Some("mono".into());
    opts.threads = 1;
    ingest(&[input], &opts, &NoProgress).expect("ingest");
    let s = correlate(&ds, &Options::default()).expect("correlate");
    assert_eq!(s.stats.resyncs, 5, "one fresh start per gap");
    let truth = read_truth(&testdata().join("s2-c4/truth.jsonl")).expect("truth");
    let score = evaluate(&ds, &truth).expect("eval");
    assert!(
        score.complete >= score.sent * 3 / 4,
        "most requests do not overlap a gap: {score:?}"
    );
    assert_eq!(score.complete_exact, score.complete, "{score:?}");
}
