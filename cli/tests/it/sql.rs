//! `kreq sql` and `kreq report` from the command line.

use std::path::PathBuf;

use crate::{ingest_capture, kreq, tmp};

fn correlated() -> PathBuf {
    crate::correlated_capture("s1-c1", "cli-sql")
}

fn sql(args: &[&str]) -> std::process::Output {
    let ds = correlated();
    let mut a = vec!["sql", ds.to_str().unwrap_or("")];
    a.extend_from_slice(args);
    kreq(&a)
}

#[test]
fn csv_when_piped_with_header_and_plain_values() {
    let o = sql(&["SELECT request_id, duration_ns, fmt_duration(duration_ns) AS d, complete FROM requests ORDER BY duration_ns DESC, request_id LIMIT 2"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8_lossy(&o.stdout);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "request_id,duration_ns,d,complete");
    assert_eq!(lines[1], "489,51244000,51.244 ms,true");
    assert_eq!(lines.len(), 3);
}

#[test]
fn csv_writes_nested_columns_as_json_text() {
    // `fields` is a map; CSV has no nested values, so each map is one JSON object cell.
    let o = sql(&[
        "SELECT event, fields FROM events WHERE event = 'sched_switch' ORDER BY ts_ns LIMIT 1",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8_lossy(&o.stdout);
    let mut rdr = out
        .lines()
        .skip(1)
        .map(|l| l.splitn(2, ',').collect::<Vec<_>>());
    let row = rdr.next().expect("one row");
    assert_eq!(row[0], "sched_switch");
    let cell = row[1].trim_matches('"').replace("\"\"", "\"");
    let map: serde_json::Value = serde_json::from_str(&cell).expect("a JSON object");
    assert!(map.get("next_comm").is_some_and(|v| v.is_string()), "{map}");
}

#[test]
fn ndjson_table_and_parquet_outputs() {
    let q = "SELECT comm, count(*) AS n FROM spans GROUP BY comm ORDER BY comm";
    let o = sql(&[q, "--format", "ndjson"]);
    let out = String::from_utf8_lossy(&o.stdout);
    let first: serde_json::Value =
        serde_json::from_str(out.lines().next().unwrap_or("")).expect("json line");
    assert_eq!(first["comm"], "nginx");
    assert_eq!(first["n"], 200);
    let o = sql(&[q, "--format", "table"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("| redis-server | 200 |"), "{out}");
    let file = tmp("cli-sql-parquet").join("out.parquet");
    let o = sql(&[q, "--format", "parquet", "-o", file.to_str().unwrap_or("")]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let f = std::fs::File::open(&file).expect("parquet written");
    let rows: usize = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f)
        .expect("valid parquet")
        .build()
        .expect("reader")
        .map(|b| b.expect("batch").num_rows())
        .sum();
    assert_eq!(rows, 3);
}

#[test]
fn bad_queries_and_datasets_fail_clearly() {
    let o = sql(&["SELECT nope FROM requests"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("nope"), "{err}");
    let o = sql(&["SELEC 1"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("SQL syntax error: "), "{err}");
    assert_eq!(
        err.matches("Line: 1, Column: 1").count(),
        1,
        "said once: {err}"
    );
    let o = kreq(&["sql", "/nonexistent-dataset", "SELECT 1"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("not a kreq dataset"));
    // A dataset that was never correlated has events but no report.
    let raw = ingest_capture("s1-c1", "cli-sql-raw");
    let o = kreq(&["report", raw.to_str().unwrap_or("")]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("run `kreq correlate"));
    let o = kreq(&[
        "sql",
        raw.to_str().unwrap_or(""),
        "SELECT count(*) AS n FROM events",
    ]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("18474"));
    // Correlation results of schema 2 lack the self times: refused, with the way out.
    let manifest = raw.join("kreq.json");
    let text = std::fs::read_to_string(&manifest).expect("manifest");
    let mut m: serde_json::Value = serde_json::from_str(&text).expect("json");
    m["schema_version"] = "2".into();
    m["correlation"] = serde_json::json!({"ingress": [], "ingress_auto": true, "requests": 0,
                                          "spans": 0, "edges": 0, "labelled_events": 0});
    std::fs::write(&manifest, m.to_string()).expect("write");
    let o = kreq(&["sql", raw.to_str().unwrap_or(""), "SELECT 1"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("older kreq (schema 2)") && err.contains("kreq correlate"),
        "{err}"
    );
}

#[test]
fn report_has_every_section() {
    let ds = correlated();
    let o = kreq(&["report", ds.to_str().unwrap_or(""), "--top", "3"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8_lossy(&o.stdout);
    for s in [
        "## Requests",
        "## Slowest requests",
        "## Where requests spend their time",
        "## Hotspots of the slowest 1%: threads",
        "## Hotspots of the slowest 1%: syscalls",
        "## Lost events",
    ] {
        assert!(out.contains(s), "missing {s}:\n{out}");
    }
    assert!(out.contains("| 100      | 0          |"), "{out}");
}

/// A reader that stops early (`kreq eval ... | head -1`, `kreq sql ... | head`) ends kreq
/// quietly with success: no panic message on stderr.
#[test]
fn a_reader_that_stops_early_ends_kreq_quietly() {
    let ds = correlated();
    let truth = crate::root().join("testdata/s1-c1/truth.jsonl");
    let ds = ds.to_str().unwrap_or("");
    for args in [
        vec!["eval", ds, "--truth", truth.to_str().unwrap_or("")],
        vec!["report", ds],
        vec!["sql", ds, "SELECT * FROM events"],
    ] {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_kreq"))
            .args(&args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run kreq");
        // The read end closes before kreq writes: its first write fails.
        drop(child.stdout.take());
        let out = child.wait_with_output().expect("wait");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert!(out.status.success(), "{args:?}: {:?} {err}", out.status);
    }
}
