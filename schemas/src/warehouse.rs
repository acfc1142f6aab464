//! Layout of a warehouse: many recordings (hosts, days) in Hive-style partitions.
//!
//! ```text
//! WAREHOUSE/
//!   kreq-warehouse.json                   marker and schema version ([`Marker`])
//!   events -> current/events              one symlink per table, made with the warehouse
//!   lost_events -> current/lost_events    (and spans, requests, edges)
//!   current -> .snapshots/000007          the visible snapshot; a commit swaps this symlink
//!   .snapshots/000007/events/host=H/date=YYYY-MM-DD/part-BATCH-000000.parquet
//!   .snapshots/000007/batches/BATCH.json  what each batch holds ([`BatchRecord`])
//!   .snapshots/000007/clock_offsets.json  hosts' clock offsets, from `kreq correlate` ([`ClockOffset`])
//!   _staging/BATCH-PID/                   a batch being written: a plain dataset
//! ```
//! A batch (one `kreq ingest`, one recording) is written as a dataset under `_staging`, then
//! committed: a new snapshot holds hard links to every file of the current one except the
//! batch's earlier files, plus the batch's new parts, and `current` is replaced by a symlink to
//! it in one `rename`. A reader that resolves `WAREHOUSE/events` sees one snapshot whole; a
//! batch killed at any point leaves `current` as it was. Files are named by their batch, so
//! committing a batch again replaces its files instead of adding to them.
//!
//! `pyarrow.dataset.dataset("WAREHOUSE/events", partitioning="hive")`,
//! `duckdb.read_parquet("WAREHOUSE/events/*/*/*.parquet", hive_partitioning=true)` and Spark's
//! `spark.read.parquet("WAREHOUSE/events")` read a table with its `host` and `date` columns.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::dataset::Manifest;

/// The marker file: a directory holding it is a warehouse.
pub const MARKER: &str = "kreq-warehouse.json";
/// The symlink to the visible snapshot.
pub const CURRENT: &str = "current";
/// Directory of snapshots.
pub const SNAPSHOTS: &str = ".snapshots";
/// Directory of batches being written.
pub const STAGING: &str = "_staging";
/// Directory, inside a snapshot, of the batches' records.
pub const BATCHES: &str = "batches";
/// Partition key: the traced host.
pub const HOST: &str = "host";
/// Partition key: the day of the recording, `YYYY-MM-DD` (UTC).
pub const DATE: &str = "date";

/// Contents of [`MARKER`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Marker {
    /// [`crate::SCHEMA_VERSION`] of the tables.
    pub schema_version: String,
    /// Tool and version that made the warehouse.
    pub created_by: String,
}

/// What one committed batch holds, stored as `batches/BATCH.json` in each snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchRecord {
    /// The batch id ([`part_name`] puts it in every file name).
    pub id: String,
    /// Host partition.
    pub host: String,
    /// Date partition.
    pub date: String,
    /// Files, relative to the snapshot.
    pub files: Vec<String>,
    /// The batch's dataset manifest (its inputs, clock, counts).
    pub manifest: Manifest,
    /// The first request and span id of its correlation ([`ID_RANGE`] ids per batch), once
    /// correlated: ids are unique across the warehouse.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_base: Option<u64>,
}

/// File, inside a snapshot, of the clock offsets between hosts that call each other: a JSON
/// array of [`ClockOffset`], written by `kreq correlate WAREHOUSE` from the `clock_offsets`
/// view once its batches are correlated. A later commit carries it into its snapshot as it
/// is; the next `kreq correlate` writes it again from the data then visible.
pub const CLOCK_OFFSETS: &str = "clock_offsets.json";

/// The clock of `server_host` minus the clock of `client_host`, bounded by the calls between
/// them: each call's request was received after it was sent, and its reply read after it was
/// answered, so `offset_min_ns <= θ <= offset_max_ns` (as NTP bounds an offset).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClockOffset {
    /// The calling host.
    pub client_host: String,
    /// The called host.
    pub server_host: String,
    /// Calls matched between them.
    pub calls: i64,
    /// Largest lower bound over the calls.
    pub offset_min_ns: i64,
    /// Smallest upper bound over the calls.
    pub offset_max_ns: i64,
    /// Midpoint of the bounds: subtract it from `server_host`'s times to put them on
    /// `client_host`'s clock.
    pub offset_ns: i64,
    /// Half the bounds' width.
    pub uncertainty_ns: i64,
}

/// Request and span ids each batch's correlation may hand out: 2^40, so that 2^23 batches fit
/// below 2^63 (readers that take ids as signed 64-bit numbers see them positive).
pub const ID_RANGE: u64 = 1 << 40;

/// True when `dir` is a warehouse.
pub fn is_warehouse(dir: &Path) -> bool {
    dir.join(MARKER).is_file()
}

/// The partition directory of a table for `host` and `date`, relative to the table.
pub fn partition(host: &str, date: &str) -> String {
    format!("{HOST}={host}/{DATE}={date}")
}

/// File name of part `seq` of batch `batch`.
pub fn part_name(batch: &str, seq: u64) -> String {
    format!("part-{batch}-{seq:06}.parquet")
}

/// The batch a part file belongs to, from its name.
pub fn batch_of(file_name: &str) -> Option<&str> {
    let rest = file_name.strip_prefix("part-")?.strip_suffix(".parquet")?;
    let (batch, seq) = rest.rsplit_once('-')?;
    seq.bytes().all(|b| b.is_ascii_digit()).then_some(batch)
}

/// Whether `value` can be a partition value or batch id: letters, digits, `.`, `_`, `-`, not
/// starting with `.` or `_` (which Hive readers take for hidden files), at most 128 bytes.
pub fn valid_value(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 128
        && !value.starts_with(['.', '_'])
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// The UTC date (`YYYY-MM-DD`) of a Unix time in seconds.
pub fn utc_date(unix_secs: i64) -> String {
    // Civil date from days since 1970-01-01 (H. Hinnant's `civil_from_days`).
    let z = unix_secs.div_euclid(86_400) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

/// Whether `date` is a `YYYY-MM-DD` date.
pub fn valid_date(date: &str) -> bool {
    let b = date.as_bytes();
    b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && [0, 1, 2, 3, 5, 6, 8, 9]
            .iter()
            .all(|&i| b[i].is_ascii_digit())
        && (1..=12).contains(&date[5..7].parse::<u32>().unwrap_or(0))
        && (1..=31).contains(&date[8..10].parse::<u32>().unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_names() {
        assert_eq!(utc_date(0), "1970-01-01");
        assert_eq!(utc_date(1_796_428_800), "2026-12-05");
        assert_eq!(utc_date(951_782_400), "2000-02-29");
        assert_eq!(utc_date(-1), "1969-12-31");
        assert!(valid_date("2026-12-05") && !valid_date("2026-13-05") && !valid_date("26-12-05"));
        assert_eq!(batch_of(&part_name("a1b2-c", 7)), Some("a1b2-c"));
        assert_eq!(batch_of("part-000001.parquet"), None);
        assert!(valid_value("web-1.example") && !valid_value("_x") && !valid_value("a/b"));
    }
}
