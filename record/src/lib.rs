//! `kreq record`: live capture from a private tracefs instance into a kreq dataset.
//!
//! The root-only half of kreq: tracefs instances, event profiles, per-CPU readers and the
//! recorder. Pages are decoded by `kreq_ingest::binary` and written by its dataset writer, so a
//! recording and an ingested trace.dat of the same events give the same tables.
#![deny(missing_docs)]

mod error;
pub mod instance;
mod options;
mod parts;
pub mod profile;
mod reader;
mod record;
mod recorder;
pub mod scope;
mod setup;
mod splice;

pub use error::{Error, Result};
pub use options::{RecordObserver, RecordOptions, RecordReport, Silent};
pub use reader::ReaderStats;
pub use record::record;
