//! SQL over kreq datasets with DataFusion.
//!
//! [`open`] registers the tables a dataset has (`events`, `lost_events`, `requests`, `spans`,
//! `edges`) with the schemas of `kreq-schemas` (no inference), the trace UDFs of [`udf`] and the
//! analysis views of [`views`]. Time filters on `ts_ns` / `start_ns` prune files, row groups and
//! pages through the Parquet statistics.
#![deny(missing_docs)]

mod error;
pub mod export;
mod optimizer;
pub mod options;
mod ordering;
pub mod output;
pub mod report;
pub mod tables;
pub mod udf;
pub mod views;

pub use error::{Error, Result};
pub use tables::{open, open_remote, open_with, Remote};

use arrow::array::RecordBatch;
use datafusion::prelude::SessionContext;

/// Runs one SQL statement and collects its result.
pub async fn sql(ctx: &SessionContext, query: &str) -> Result<Vec<RecordBatch>> {
    Ok(ctx.sql(query).await?.collect().await?)
}
