//! Integration tests of the `kreq` binary: CLI behaviour and the Parquet contract with real
//! Python readers.

mod ingest;

/// Tests that create tracefs instances take this lock: a starting recorder removes instances
/// left by dead processes, which the kill -9 test must observe itself.
pub static TRACEFS_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Take [`TRACEFS_LOCK`], even if a test that held it panicked.
pub fn tracefs_lock() -> std::sync::MutexGuard<'static, ()> {
    TRACEFS_LOCK.lock().unwrap_or_else(|e| e.into_inner())
}
mod record;
mod testbed;
