//! Test helpers shared by kreq's crates (a dev-dependency only).
//!
//! - [`skip`]: one policy for every test that needs something outside Rust (python modules,
//!   root and tracefs, the testbed's servers, chromium). Without it the test prints
//!   `SKIPPED <test>: <why>` and passes; when the environment variable of that need is set
//!   (`scripts/test` sets them where CI provides the need) it fails instead.
//! - [`tracefs_lock`]: tests that trace hold it, so two never trace at once, across test
//!   threads and test binaries alike.
//! - [`scratch`]: a fresh directory under the crate's `CARGO_TARGET_TMPDIR`.

pub mod skip;

mod lock;
pub use lock::{tracefs_lock, TracefsLock};

use std::path::{Path, PathBuf};

/// A fresh, empty directory `name` under `tmp_root` (pass `env!("CARGO_TARGET_TMPDIR")`).
pub fn scratch(tmp_root: &str, name: &str) -> PathBuf {
    let p = Path::new(tmp_root).join(name);
    let _ = std::fs::remove_dir_all(&p);
    std::fs::create_dir_all(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    p
}

/// The repository's root directory.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The repository's `testdata/` directory (real captures, `testdata/README.md`).
pub fn testdata() -> PathBuf {
    repo().join("testdata")
}

/// Wrapped inputs of the public trace corpus ([`skip::external`]) and the plain text its
/// `SOURCES.md` says each holds: systrace HTML (with trace-data blocks, with the legacy
/// JavaScript string, inside zstd) and `atrace -z`.
pub const WRAPPED_TRACES: &[(&str, &str)] = &[
    (
        "catapult_android_systrace.html.zst",
        "catapult_android_systrace.extracted.txt.zst",
    ),
    (
        "catapult_compressed_atrace_data.txt",
        "catapult_compressed_atrace_data.extracted.txt",
    ),
    (
        "catapult_trivial_systrace.html",
        "catapult_trivial_systrace.extracted.txt",
    ),
    (
        "trappy_trace_legacy_systrace.html",
        "trappy_trace_legacy_systrace.extracted.txt",
    ),
    (
        "trappy_trace_surfaceflinger.html",
        "trappy_trace_surfaceflinger.extracted.txt",
    ),
];
