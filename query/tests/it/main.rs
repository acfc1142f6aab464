//! SQL behaviour pinned with sqllogictest files, and the analysis views checked against DuckDB
//! running the same definitions over the same Parquet files.

mod duckdb;
mod notebook;
mod ordering;
mod slt;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use kreq_correlate::dataset::{correlate, Options};
use kreq_ingest::{ingest, IngestOptions, NoProgress};

fn testdata() -> PathBuf {
    kreq_testkit::testdata()
}

/// A correlated dataset of a bundled capture, built once per test run.
fn fixture(name: &str, file: &str) -> PathBuf {
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("query-fixture-{name}"));
    let _ = std::fs::remove_dir_all(&out);
    let mut opts = IngestOptions::new(&out);
    opts.trace_clock = Some("mono".into());
    opts.threads = 1;
    ingest(&[testdata().join(name).join(file)], &opts, &NoProgress).expect("ingest");
    correlate(&out, &Options::default()).expect("correlate");
    out
}

/// `s1-c1` text capture: 18,474 events, 100 requests.
fn s1() -> &'static Path {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| fixture("s1-c1", "trace.txt.zst"))
}

/// `t0-tracecmd` binary trace.dat: 12,595 events, 60 requests, ns times.
fn t0() -> &'static Path {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| fixture("t0-tracecmd", "trace.dat"))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// Whether python3 can import `modules` (comma-separated); otherwise the calling test skips
/// saying why, or fails when `KREQ_REQUIRE_PYTHON` is set (`kreq_testkit::skip`).
fn python_with(modules: &str, test: &str) -> bool {
    kreq_testkit::skip::python(test, modules)
}
