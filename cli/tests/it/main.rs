//! Integration tests of the `kreq` binary: CLI behaviour and the Parquet contract with real
//! Python readers.

mod corpus;
mod export;
mod ingest;

pub use kreq_testkit::tracefs_lock;
mod record;
mod sql;
mod testbed;
mod warehouse;

/// The `events` table of a dataset, every part file read in name order. Panics, naming the
/// file, on any part that is not valid Parquet.
pub fn read_events(ds: &std::path::Path) -> arrow::array::RecordBatch {
    let mut files: Vec<_> = std::fs::read_dir(ds.join("events"))
        .expect("events")
        .flatten()
        .map(|e| e.path())
        .filter(|f| f.extension().is_some_and(|x| x == "parquet"))
        .collect();
    files.sort();
    let mut batches = Vec::new();
    for f in &files {
        let r = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
            std::fs::File::open(f).expect("open"),
        )
        .unwrap_or_else(|e| panic!("{}: not a valid parquet file: {e}", f.display()))
        .build()
        .expect("reader");
        for b in r {
            batches.push(b.unwrap_or_else(|e| panic!("{}: {e}", f.display())));
        }
    }
    arrow::compute::concat_batches(&kreq_schemas::events::schema(), &batches).expect("concat")
}

/// Runs the kreq binary.
pub fn kreq(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_kreq"))
        .args(args)
        .output()
        .expect("run kreq")
}

/// `kreq sql AT QUERY` (a dataset or a warehouse), which must succeed: its rows as CSV lines,
/// after the header.
pub fn sql(at: &std::path::Path, query: &str) -> Vec<String> {
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_kreq"))
        .arg("sql")
        .arg(at)
        .arg(query)
        .output()
        .expect("run kreq sql");
    csv_rows(&o, query)
}

/// The rows a `kreq sql` run (`what`) printed as CSV lines, after the header; it must have
/// succeeded.
pub fn csv_rows(o: &std::process::Output, what: &str) -> Vec<String> {
    assert!(
        o.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .skip(1)
        .map(str::to_owned)
        .collect()
}

/// The repository's root directory.
pub fn root() -> std::path::PathBuf {
    kreq_testkit::repo()
}

/// A fresh, empty scratch directory `name`.
pub fn tmp(name: &str) -> std::path::PathBuf {
    kreq_testkit::scratch(env!("CARGO_TARGET_TMPDIR"), name)
}

/// Ingests the bundled capture `testdata/NAME/trace.txt.zst` into a fresh `tmp(dir)/ds`.
pub fn ingest_capture(name: &str, dir: &str) -> std::path::PathBuf {
    let out = tmp(dir).join("ds");
    let input = root().join("testdata").join(name).join("trace.txt.zst");
    let o = kreq(&[
        "ingest",
        input.to_str().unwrap_or(""),
        "-o",
        out.to_str().unwrap_or(""),
        "--force",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    out
}

/// [`ingest_capture`] then `kreq correlate`, once per test binary for each `dir`.
pub fn correlated_capture(name: &str, dir: &'static str) -> std::path::PathBuf {
    static DONE: std::sync::Mutex<Vec<(&'static str, std::path::PathBuf)>> =
        std::sync::Mutex::new(Vec::new());
    let mut done = DONE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, p)) = done.iter().find(|(d, _)| *d == dir) {
        return p.clone();
    }
    let out = ingest_capture(name, dir);
    let o = kreq(&["correlate", "-q", out.to_str().unwrap_or("")]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    done.push((dir, out.clone()));
    out
}
