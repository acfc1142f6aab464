//! Integration tests of the `kreq` binary: CLI behaviour and the Parquet contract with real
//! Python readers.

mod ingest;
mod record;
mod testbed;
