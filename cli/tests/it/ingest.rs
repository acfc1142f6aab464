//! `kreq ingest` end to end.

use std::process::Command;

use crate::{kreq, root, tmp};

#[test]
fn summary_reports_events_rate_and_size() {
    let out = tmp("cli-summary").join("ds");
    let input = root().join("testdata/s1-c1/trace.txt.zst");
    let o = kreq(&[
        "ingest",
        input.to_str().unwrap_or(""),
        "-o",
        out.to_str().unwrap_or(""),
        "--clock",
        "mono",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("ingested 18474 events"), "{err}");
    assert!(
        err.contains("events/s") && err.contains("bytes/event"),
        "{err}"
    );
    assert!(err.contains("malformed lines: 0"), "{err}");
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("kreq.json")).expect("manifest"))
            .expect("json");
    assert_eq!(m["events"], 18474);
    assert_eq!(m["trace_clock"], "mono");
}

#[test]
fn stdin_input_and_strict_failure_exit_code() {
    let dir = tmp("cli-stdin");
    let bad = dir.join("bad.txt");
    std::fs::write(
        &bad,
        "            bash-1  [000] ..... 1.000001: sys_close -> 0x0\nnot a trace line\n",
    )
    .expect("write");
    let out = dir.join("ds");
    let o = Command::new(env!("CARGO_BIN_EXE_kreq"))
        .args(["ingest", "-", "-o", out.to_str().unwrap_or(""), "--strict"])
        .stdin(std::fs::File::open(&bad).expect("open"))
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("-:2: byte offset 59: malformed line"), "{err}");
    // Without --strict the same input ingests and the summary shows the bad line.
    let o = kreq(&[
        "ingest",
        bad.to_str().unwrap_or(""),
        "-o",
        dir.join("ds2").to_str().unwrap_or(""),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("malformed lines: 1") && err.contains("bad.txt:2: byte 59"),
        "{err}"
    );
}

#[test]
fn missing_input_fails_with_its_name() {
    let dir = tmp("cli-missing");
    let o = kreq(&[
        "ingest",
        "/nonexistent/trace.txt",
        "-o",
        dir.join("ds").to_str().unwrap_or(""),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("/nonexistent/trace.txt"));
}

/// pyarrow and DuckDB read what kreq wrote. Skips (saying why) only when the Python packages
/// are missing and `KREQ_REQUIRE_PYTHON` is unset; CI sets it, so there it cannot skip.
#[test]
fn python_readers_open_the_dataset() {
    if !kreq_testkit::skip::python("python_readers_open_the_dataset", "pyarrow, duckdb") {
        return;
    }
    let out = tmp("cli-python").join("ds");
    let input = root().join("testdata/s2-c4/trace.txt.zst");
    let o = kreq(&[
        "ingest",
        input.to_str().unwrap_or(""),
        "-o",
        out.to_str().unwrap_or(""),
        "--chunk-mib",
        "2",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // Small chunks give several parts, so labels cross part boundaries.
    let o = kreq(&["correlate", out.to_str().unwrap_or("")]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // Counts taken from the text with grep: `grep -c ' sched_switch:'` etc.
    let expected = serde_json::json!({
        "events": 47896,
        "event_counts": {"sched_switch": 3730, "tcp_probe": 4187, "sys_enter_recvfrom": 1807,
                          "sys_exit_sendto": 1500, "sock_send_length": 2700},
        "first": {"ts_ns": 2634276836000i64, "tid": 24523, "comm": "bash", "event": "sys_exit_write", "ret": 2},
        "requests": 300
    });
    let script = root().join("cli/tests/python/check_dataset.py");
    let o = Command::new("python3")
        .arg(script)
        .arg(&out)
        .arg(expected.to_string())
        .output()
        .expect("python3");
    let text = String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{text}");
    assert!(
        text.contains("pyarrow: 47896 rows")
            && text.contains("duckdb: 47896 rows")
            && text.contains("correlation: 300 requests"),
        "{text}"
    );
}

/// A notebook that reads a part with pyarrow and writes it back (filtering rows, say) writes
/// the `fields` map with the Parquet spec's names (`key_value`, `key`, `value`), not arrow-rs'
/// (`entries`, `keys`, `values`): kreq still correlates and queries it, with the requests of
/// the original.
#[test]
fn a_part_written_back_by_pyarrow_still_correlates() {
    let test = "a_part_written_back_by_pyarrow_still_correlates";
    if !kreq_testkit::skip::python(test, "pyarrow") {
        return;
    }
    let ds = crate::ingest_capture("s1-c1", "cli-pyarrow-rewrite");
    let part = ds.join("events/part-000000.parquet");
    let script = "import sys, pyarrow.parquet as pq\n\
                  t = pq.read_table(sys.argv[1])\n\
                  pq.write_table(t, sys.argv[1], compression='zstd')\n\
                  print(pq.read_schema(sys.argv[1]).field('fields').type)";
    let o = Command::new("python3")
        .args(["-c", script, part.to_str().unwrap_or("")])
        .output()
        .expect("python3");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = kreq(&["correlate", ds.to_str().unwrap_or(""), "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["requests"], 100);
    let o = kreq(&[
        "sql",
        ds.to_str().unwrap_or(""),
        "select count(*) from events where fields is not null",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// Input that is not a trace (random bytes, prose) is refused by name with a non-zero exit,
/// and leaves no dataset behind; a good input along with it does not make it pass.
#[test]
fn input_that_is_not_a_trace_is_refused_and_writes_nothing() {
    let dir = tmp("not-a-trace");
    let random = dir.join("random.bin");
    // A fixed pseudo-random sequence (xorshift), so the test is the same on every run.
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let bytes: Vec<u8> = (0..100_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::write(&random, bytes).expect("write");
    let prose = dir.join("prose.txt");
    std::fs::write(&prose, "This is prose.\nIt is not a trace.\n").expect("write");
    let good = root().join("testdata/s1-c1/trace.txt.zst");
    for inputs in [vec![&random], vec![&prose], vec![&good, &prose]] {
        let out = dir.join("ds");
        let mut args = vec!["ingest"];
        args.extend(inputs.iter().map(|p| p.to_str().unwrap_or("")));
        args.extend(["-o", out.to_str().unwrap_or("")]);
        let o = kreq(&args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{inputs:?} accepted");
        let bad = inputs.last().expect("input").to_str().unwrap_or("");
        assert!(
            err.contains(&format!("{bad}: not an ftrace trace")),
            "{inputs:?}: {err}"
        );
        assert!(!out.exists(), "{inputs:?} left {}", out.display());
    }
}

/// A compressed input cut off mid-frame (a recording killed while compressing) keeps every
/// whole line before the cut: the events are those of the decompressible prefix, the manifest
/// says where it stopped, and kreq exits 3 (neither success nor failure).
#[test]
fn a_truncated_compressed_input_keeps_what_precedes_the_cut() {
    use std::io::Read;
    let dir = tmp("truncated-zst");
    let whole = std::fs::read(root().join("testdata/s1-c1/trace.txt.zst")).expect("read");
    let cut = dir.join("cut.txt.zst");
    std::fs::write(&cut, &whole[..whole.len() / 2]).expect("write");
    // The text before the cut, as far as a decoder gets, up to its last whole line.
    let mut text = Vec::new();
    let mut dec = zstd::Decoder::new(std::fs::File::open(&cut).expect("open")).expect("zstd");
    let mut buf = [0u8; 65536];
    loop {
        match dec.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => text.extend_from_slice(&buf[..n]),
        }
    }
    let whole_lines = text.iter().rposition(|&c| c == b'\n').map_or(0, |i| i + 1);
    let plain = dir.join("prefix.txt");
    std::fs::write(&plain, &text[..whole_lines]).expect("write");
    let (a, b) = (dir.join("a"), dir.join("b"));
    let o = kreq(&[
        "ingest",
        cut.to_str().unwrap_or(""),
        "-o",
        a.to_str().unwrap_or(""),
    ]);
    assert_eq!(
        o.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("ends early"));
    let o = kreq(&[
        "ingest",
        plain.to_str().unwrap_or(""),
        "-o",
        b.to_str().unwrap_or(""),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let manifest = |d: &std::path::Path| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(d.join("kreq.json")).expect("manifest"))
            .expect("json")
    };
    let (ma, mb) = (manifest(&a), manifest(&b));
    assert!(mb["events"].as_u64().unwrap_or(0) > 1000);
    assert_eq!(
        ma["events"], mb["events"],
        "every whole line before the cut"
    );
    assert_eq!(
        ma["sources"][0]["truncated_at"].as_u64(),
        Some(whole_lines as u64)
    );
}

/// `--json` summaries: `ingest` and `correlate` print one JSON object on stdout with what
/// their text summaries say, so scripts need not scrape prose.
#[test]
fn ingest_and_correlate_print_json_summaries() {
    let out = tmp("json-summaries").join("ds");
    let input = root().join("testdata/s1-c1/trace.txt.zst");
    let o = kreq(&[
        "ingest",
        input.to_str().unwrap_or(""),
        "-o",
        out.to_str().unwrap_or(""),
        "--clock",
        "mono",
        "--json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("ingest json");
    assert_eq!(v["events"], 18474);
    assert_eq!(v["malformed"], 0);
    assert_eq!(v["trace_clock"], "mono");
    assert_eq!(v["inputs"][0]["events"], 18474);
    assert!(
        o.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = kreq(&["correlate", out.to_str().unwrap_or(""), "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("correlate json");
    assert_eq!(v["requests"], 100);
    assert_eq!(v["ingress"][0], "127.0.0.1:18080");
    assert_eq!(v["unseen_bytes"], 0);
    assert_eq!(v["latency_ns"]["count"], 100);
    assert!(v["latency_ns"]["p50"].as_u64().unwrap_or(0) > 0);
    assert_eq!(v["services"]["redis-server"]["spans"], 200);
}
