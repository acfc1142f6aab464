//! The on-disk contract of a kreq dataset.
//!
//! Every crate that reads or writes a dataset takes column names, Arrow schemas and Parquet
//! writer settings from here, so there is one definition of what is on disk.
//!
//! ```
//! use kreq_schemas::events;
//! let schema = events::schema();
//! assert_eq!(schema.field(0).name(), events::TS_NS);
//! ```
#![deny(missing_docs)]

pub mod dataset;
pub mod edges;
pub mod events;
pub mod lost_events;
pub mod requests;
pub mod spans;
pub mod table;
pub mod warehouse;
pub mod writer;

/// Version of the on-disk schema, stored in every file's metadata under [`SCHEMA_VERSION_KEY`].
/// Bumped whenever a column is added, removed or changes meaning. 3 added the spans' self
/// times; 4 made `self_ns` exclusive time and gave client spans their wire split (a version 3
/// dataset reads as before, its client spans' self split 0); 5 added `spans.end_tid`; 6
/// promoted the syscalls' `op` and futex's `utime` to `events` columns (events of older
/// schemas read them as null, and keep them in `fields`).
pub const SCHEMA_VERSION: &str = "6";

/// Parquet key-value metadata key holding [`SCHEMA_VERSION`].
pub const SCHEMA_VERSION_KEY: &str = "kreq.schema_version";

/// Parquet key-value metadata key holding the table name (`events`, `lost_events`, ...).
pub const TABLE_KEY: &str = "kreq.table";

/// The Arrow type of kreq's repeated-string columns: a dictionary of Utf8 with Int32 keys.
pub(crate) fn dict() -> arrow_schema::DataType {
    use arrow_schema::DataType;
    DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8))
}
