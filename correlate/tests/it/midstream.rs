//! A recording that starts in the middle of traffic: its first reads take bytes sent before
//! it began. Those bytes must not shift later messages onto the wrong requests.

use kreq_correlate::dataset::{correlate, read_manifest, Options};
use kreq_correlate::eval::{evaluate, read_truth};

use crate::{capture_text, ingested_lines, testdata};

#[test]
fn a_recording_started_mid_traffic_keeps_later_requests_exact() {
    let text = capture_text("s2-c4");
    let lines: Vec<&str> = text.lines().collect();
    // Drop the first 45%: connections are open and messages are in flight at the cut.
    let dir = ingested_lines(&lines[lines.len() * 45 / 100..]);
    let ds = dir.path().join("ds");
    let s = correlate(&ds, &Options::default()).expect("correlate");
    // Bytes of the messages in flight at the cut, not a message per later exchange (before
    // the rule: 7,161 bytes, every later message on those connections shifted by one).
    assert!(
        (1..1_000).contains(&s.stats.unseen_bytes),
        "unseen bytes: {}",
        s.stats.unseen_bytes
    );
    let first = read_manifest(&ds)
        .expect("manifest")
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
    let text = capture_text("s2-c4");
    let lines: Vec<&str> = text.lines().collect();
    // Five gaps of 1% of the events each, reported as trace_pipe reports them.
    let n = lines.len();
    let gap = |i: usize| (1..=5).any(|k| (k * n / 6..k * n / 6 + n / 100).contains(&i));
    let mut kept = Vec::with_capacity(n);
    for (i, l) in lines.iter().enumerate() {
        if !gap(i) {
            kept.push(l.to_string());
        } else if !gap(i + 1) {
            kept.extend((0..2).map(|cpu| format!("CPU:{cpu} [LOST {} EVENTS]", n / 200)));
        }
    }
    let dir = ingested_lines(kept);
    let ds = dir.path().join("ds");
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
