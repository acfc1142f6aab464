//! Golden snapshots of parsed rows from the real captures in `testdata/`.

use std::path::PathBuf;

use arrow::array::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use kreq_ingest::text::chunk::{parse_chunk, ChunkPos};

pub fn testdata(rel: &str) -> PathBuf {
    kreq_testkit::testdata().join(rel)
}

pub fn capture(rel: &str) -> Vec<u8> {
    let f = std::fs::File::open(testdata(rel)).expect("testdata file");
    zstd::decode_all(f).expect("zstd")
}

/// Every non-null column of every row, one row per line.
pub fn render(batch: &RecordBatch) -> String {
    let opts = FormatOptions::default();
    let fmts: Vec<_> = batch
        .columns()
        .iter()
        .map(|c| ArrayFormatter::try_new(c.as_ref(), &opts).expect("formatter"))
        .collect();
    let schema = batch.schema();
    let mut out = String::new();
    for row in 0..batch.num_rows() {
        let cells: Vec<String> = (0..batch.num_columns())
            .filter(|&c| batch.column(c).is_valid(row))
            .map(|c| format!("{}={}", schema.field(c).name(), fmts[c].value(row)))
            .collect();
        out.push_str(&cells.join(" "));
        out.push('\n');
    }
    out
}

/// The first `n` lines of a capture, plus every line of the kinds in `extra` (first match each).
fn sample(text: &[u8], n: usize, extra: &[&str]) -> Vec<u8> {
    let s = String::from_utf8_lossy(text);
    let all: Vec<&str> = s.lines().collect();
    // Line numbers taken, so a line that is among the first `n` or matches two patterns is
    // shown once.
    let mut taken: Vec<usize> = (0..n.min(all.len())).collect();
    for pat in extra {
        if let Some(i) = all.iter().position(|l| l.contains(pat)) {
            if !taken.contains(&i) {
                taken.push(i);
            }
        }
    }
    let lines: Vec<&str> = taken.iter().map(|&i| all[i]).collect();
    (lines.join("\n") + "\n").into_bytes()
}

const KINDS: &[&str] = &[
    " sched_switch:",
    " sched_wakeup:",
    " sched_wakeup_new:",
    " sched_process_fork:",
    " sched_process_exit:",
    "sys_accept4",
    "sys_connect",
    "sys_recvfrom",
    "sys_sendto",
    "sys_writev",
    "sys_readv",
    "sys_epoll_wait",
    " sock_send_length:",
    " sock_recv_length:",
    " tcp_probe:",
    " tcp_rcv_space_adjust:",
    " inet_sock_set_state:",
    " tcp_destroy_sock:",
    " net_dev_xmit:",
    " netif_receive_skb:",
];

/// Parsed rows of a sample of a capture, which must parse without a malformed line.
fn sample_rows(capture_path: &str) -> String {
    let text = sample(&capture(capture_path), 12, KINDS);
    let parsed = parse_chunk(
        &text,
        ChunkPos {
            first_line: 1,
            offset: 0,
        },
    )
    .expect("parse");
    assert_eq!(parsed.malformed_count, 0);
    render(&parsed.events)
}

#[test]
fn trace_pipe_rows() {
    insta::assert_snapshot!(sample_rows("s2-c4/trace.txt.zst"));
}

#[test]
fn trace_cmd_report_rows() {
    insta::assert_snapshot!(sample_rows("t0-tracecmd/report.txt.zst"));
}
