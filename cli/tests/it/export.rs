//! `kreq export` (Perfetto, OTLP) and `kreq report --html` on the bundled s2-c4 capture,
//! checked by format validators in Python and by headless Chromium (Debian's `chromium`).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{ingest_capture, kreq, root};

/// The bundled sample, ingested and correlated once.
fn correlated() -> PathBuf {
    crate::correlated_capture("s2-c4", "cli-export")
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap_or("")
}

/// One integer from `kreq sql ... --format csv` (header, then the value).
fn sql_int(ds: &Path, q: &str) -> i64 {
    let o = kreq(&["sql", s(ds), q, "--format", "csv"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    text.lines()
        .nth(1)
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or_else(|| panic!("no integer in {text:?}"))
}

/// Run a validator in `cli/tests/python`, which prints a JSON summary and fails on problems.
fn validate(script: &str, args: &[&str]) -> serde_json::Value {
    let path = root().join("cli/tests/python").join(script);
    let o = Command::new("python3")
        .arg(path)
        .args(args)
        .output()
        .expect("python3");
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "{script} rejected the export: {out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{script} printed {out}: {e}"))
}

fn export(args: &[&str]) -> String {
    let ds = correlated();
    let mut a = vec!["export", s(&ds)];
    a.extend_from_slice(args);
    let o = kreq(&a);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn perfetto_export_follows_the_trace_event_format() {
    let ds = correlated();
    let dir = ds.parent().expect("dir").to_owned();
    let spans = sql_int(&ds, "SELECT count(*) FROM spans");
    let edges = sql_int(&ds, "SELECT count(*) FROM edges");
    let all = dir.join("all.perfetto.json");
    let msg = export(&["-f", "perfetto", "-o", s(&all)]);
    assert!(msg.contains("exported 300 requests"), "{msg}");
    let v = validate(
        "validate_chrome_trace.py",
        &[s(&all), &spans.to_string(), &edges.to_string()],
    );
    // nginx and the app serve several requests at once: their threads need extra lanes.
    assert!(v["tracks"].as_u64() > v["processes"].as_u64(), "{v}");

    // Selections: one request, the 5 slowest, a time window.
    let id = sql_int(
        &ds,
        "SELECT request_id FROM requests ORDER BY duration_ns DESC, request_id LIMIT 1",
    );
    let one = dir.join("one.json");
    export(&[
        "-f",
        "perfetto",
        "-o",
        s(&one),
        "--request",
        &id.to_string(),
    ]);
    let n = sql_int(
        &ds,
        &format!("SELECT count(*) FROM spans WHERE request_id = {id}"),
    );
    validate(
        "validate_chrome_trace.py",
        &[s(&one), &n.to_string(), &(n - 1).to_string()],
    );

    let slow = dir.join("slow.json");
    export(&["-f", "perfetto", "-o", s(&slow), "--slowest", "5"]);
    let n = sql_int(
        &ds,
        "SELECT count(*) FROM spans WHERE request_id IN
           (SELECT request_id FROM requests ORDER BY duration_ns DESC, request_id LIMIT 5)",
    );
    validate(
        "validate_chrome_trace.py",
        &[s(&slow), &n.to_string(), &(n - 5).to_string()],
    );

    let from = sql_int(&ds, "SELECT min(start_ns) FROM requests");
    let to = from + 1_000_000_000;
    let win = dir.join("window.json");
    let msg = export(&[
        "-f",
        "perfetto",
        "-o",
        s(&win),
        "--from",
        &from.to_string(),
        "--to",
        &to.to_string(),
    ]);
    let reqs = sql_int(
        &ds,
        &format!("SELECT count(*) FROM requests WHERE start_ns >= {from} AND start_ns < {to}"),
    );
    assert!(
        reqs > 0 && reqs < 300,
        "{reqs} requests in the first second"
    );
    assert!(msg.contains(&format!("exported {reqs} requests")), "{msg}");
    let small = std::fs::metadata(&win).expect("window").len();
    let big = std::fs::metadata(&all).expect("all").len();
    assert!(small < big, "window export {small} B vs all {big} B");
}

#[test]
fn otlp_export_parses_with_the_official_protobuf_definitions() {
    let ds = correlated();
    let out = ds.parent().expect("dir").join("otlp.json");
    let msg = export(&["-f", "otlp", "-o", s(&out)]);
    assert!(msg.contains("300 traces"), "{msg}");
    let v = validate("validate_otlp.py", &[s(&out), "300"]);
    let spans = sql_int(&ds, "SELECT count(*) FROM spans");
    assert_eq!(v["spans"].as_i64(), Some(spans), "{v}");
    assert_eq!(v["roots"].as_i64(), Some(300), "{v}");
    let services: Vec<&str> = v["services"]
        .as_array()
        .map(|a| a.iter().filter_map(|x| x.as_str()).collect())
        .unwrap_or_default();
    assert_eq!(services, ["nginx", "python3", "redis-server"], "{v}");
    // A text capture has no wall-clock offset: said on stderr, and --epoch-offset-ns moves times.
    assert!(msg.contains("no wall-clock offset"), "{msg}");
    let shifted = ds.parent().expect("dir").join("otlp-shifted.json");
    export(&[
        "-f",
        "otlp",
        "-o",
        s(&shifted),
        "--epoch-offset-ns",
        "1000000000000000000",
    ]);
    let first_start = |p: &Path| -> u64 {
        let doc: serde_json::Value =
            serde_json::from_slice(&std::fs::read(p).expect("read")).expect("json");
        doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["startTimeUnixNano"]
            .as_str()
            .and_then(|t| t.parse().ok())
            .expect("startTimeUnixNano")
    };
    assert_eq!(
        first_start(&shifted) - first_start(&out),
        1_000_000_000_000_000_000
    );
}

#[test]
fn exports_need_correlation_and_a_matching_request() {
    let ds = ingest_capture("s1-c1", "cli-export-raw");
    let o = kreq(&["export", s(&ds), "-f", "otlp", "-o", "/dev/null"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("no correlation results") && err.contains("kreq correlate"),
        "{err}"
    );
    let o = kreq(&["report", s(&ds), "--html", "/dev/null"]);
    assert!(!o.status.success());
    let o = kreq(&[
        "export",
        s(&correlated()),
        "-f",
        "perfetto",
        "-o",
        "/dev/null",
        "--request",
        "999999999",
    ]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("no request 999999999"));
}

/// The HTML report in headless Chromium: no console output at all (errors, CSP refusals,
/// failed loads), one waterfall row per span of the chosen request, and a screenshot. Skips
/// without chromium unless `KREQ_REQUIRE_TOOLS` is set (`kreq_testkit::skip`; CI sets it).
#[test]
fn html_report_renders_in_headless_chromium() {
    let test = "html_report_renders_in_headless_chromium";
    if !kreq_testkit::skip::programs(test, &["chromium"], "apt-get install chromium") {
        return;
    }
    let ds = correlated();
    let dir = ds.parent().expect("dir").to_owned();
    let id = sql_int(
        &ds,
        "SELECT request_id FROM requests ORDER BY duration_ns, request_id LIMIT 1 OFFSET 150",
    );
    let spans = sql_int(
        &ds,
        &format!("SELECT count(*) FROM spans WHERE request_id = {id}"),
    );
    let html = dir.join("report.html");
    let o = kreq(&[
        "report",
        s(&ds),
        "--html",
        s(&html),
        "--request",
        &id.to_string(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let page = std::fs::read_to_string(&html).expect("html");
    for remote in ["http://", "https://", "src=\"//"] {
        assert!(!page.contains(remote), "the page refers to {remote}");
    }
    let url = format!("file://{}", html.display());
    let chromium = |extra: &[&str]| {
        Command::new("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
            ])
            .args([
                "--enable-logging=stderr",
                "--v=0",
                "--window-size=1100,1600",
            ])
            .args(extra)
            .arg(&url)
            .output()
            .expect("chromium (apt-get install chromium)")
    };
    let dom = chromium(&["--dump-dom"]);
    assert!(
        dom.status.success(),
        "{}",
        String::from_utf8_lossy(&dom.stderr)
    );
    let log = String::from_utf8_lossy(&dom.stderr);
    let console: Vec<&str> = log.lines().filter(|l| l.contains(":CONSOLE")).collect();
    assert!(console.is_empty(), "console output: {console:?}");
    let dom = String::from_utf8_lossy(&dom.stdout);
    // The page's script counts the rows it wired up; the DOM has one row element per span.
    assert!(
        dom.contains(&format!("data-rows=\"{spans}\"")),
        "script did not count {spans} rows"
    );
    assert_eq!(dom.matches("class=\"span-row\"").count() as i64, spans);
    assert!(dom.contains(&format!("data-request=\"{id}\"")));
    let png = dir.join("report.png");
    let _ = std::fs::remove_file(&png);
    let shot = chromium(&[&format!("--screenshot={}", png.display())]);
    assert!(
        shot.status.success(),
        "{}",
        String::from_utf8_lossy(&shot.stderr)
    );
    let bytes = std::fs::read(&png).expect("screenshot written");
    assert!(
        bytes.starts_with(b"\x89PNG") && bytes.len() > 10_000,
        "{} B",
        bytes.len()
    );
    eprintln!("screenshot: {}", png.display());
}
