//! Exports of correlated requests: Chrome/Perfetto trace JSON, OTLP JSON and a
//! self-contained HTML report.
//!
//! [`load`] selects requests (by id, the slowest N, a time window) and reads their spans and
//! edges through SQL; the writers turn that [`Selected`] set into a file. Writers stream to any
//! `Write` and report progress through [`Progress`].

mod escape;
pub mod html;
mod model;
pub mod otlp;
pub mod perfetto;
mod waterfall;

pub use model::{load, Edge, Endpoint, Request, Selected, Selection, Span, BLOCKED_REASONS};

/// Told how far an export has come (spans written out of the total).
pub trait Progress {
    /// `done` of `total` units written.
    fn step(&self, done: u64, total: u64);
}

/// Progress that goes nowhere.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn step(&self, _done: u64, _total: u64) {}
}

/// How often writers report progress (in spans).
pub(crate) const PROGRESS_EVERY: u64 = 4096;
