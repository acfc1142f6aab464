//! Parquet writer settings shared by every kreq writer.

use std::path::{Path, PathBuf};

use parquet::arrow::arrow_writer::ArrowWriter;
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::metadata::{KeyValue, SortingColumn};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

use crate::dataset::TMP_SUFFIX;
use crate::{SCHEMA_VERSION, SCHEMA_VERSION_KEY, TABLE_KEY};

/// Default zstd level: level 3 is about 15% slower to write than level 1 and noticeably
/// smaller on traces (see the ingest bench).
pub const DEFAULT_ZSTD_LEVEL: i32 = 3;

/// At most this many rows per row group: large enough for fast scans, small enough that
/// time-range filters prune most of a long recording.
pub const MAX_ROW_GROUP_ROWS: usize = 1 << 20;

/// At most this many rows per data page (parquet's default is 20k). Larger pages compress
/// better and cost fewer zstd context resets; page statistics still cut a row group into
/// 16 time slices for pruning.
pub const PAGE_ROWS: usize = 1 << 16;

/// Values parquet encodes per inner loop (its default is 1024): fewer, longer loops over the
/// 16k-row batches ingest writes.
const WRITE_BATCH: usize = 8192;

/// Text columns of `events` whose values every page mixes, so min/max statistics prune nothing.
const UNSORTED_TEXT: &[&str] = &[
    crate::events::COMM,
    crate::events::IRQ_CONTEXT,
    crate::events::EVENT,
    crate::events::PREV_STATE,
    crate::events::SADDR,
    crate::events::DADDR,
];

/// Writer properties for a kreq table.
///
/// Every file is zstd-compressed, carries page-level statistics (min/max per page, so time
/// filters prune pages as well as row groups; not for the `fields` map and the text columns in
/// `UNSORTED_TEXT`, where they would prune nothing), declares itself sorted by `ts_ns` when it is an
/// `events` file (writers sort each file; see [`sorted_by_time`]), and stores
/// [`SCHEMA_VERSION`] (unless `extra` names an older one: a part rewritten with the columns
/// it was written with), the table name and `extra` in its metadata.
pub fn properties(table: &str, zstd_level: i32, extra: &[(String, String)]) -> WriterProperties {
    let level = ZstdLevel::try_new(zstd_level).unwrap_or_default();
    let mut kv = vec![KeyValue::new(TABLE_KEY.to_owned(), table.to_owned())];
    if !extra.iter().any(|(k, _)| k == SCHEMA_VERSION_KEY) {
        kv.push(KeyValue::new(
            SCHEMA_VERSION_KEY.to_owned(),
            SCHEMA_VERSION.to_owned(),
        ));
    }
    kv.extend(
        extra
            .iter()
            .map(|(k, v)| KeyValue::new(k.clone(), v.clone())),
    );
    let ts = ColumnPath::from(crate::events::TS_NS);
    // Min/max of map keys and values prune nothing and cost a string compare per value.
    let map_leaf = |leaf: &str| {
        ColumnPath::new(vec![
            crate::events::FIELDS.to_owned(),
            "entries".to_owned(),
            leaf.to_owned(),
        ])
    };
    let mut b = WriterProperties::builder()
        .set_column_statistics_enabled(map_leaf("keys"), EnabledStatistics::None)
        .set_column_statistics_enabled(map_leaf("values"), EnabledStatistics::None);
    // Nor do those of the events table's text columns: every page of a time-sorted table holds
    // many tasks, events and addresses, and parquet compares every value to keep them.
    for col in UNSORTED_TEXT {
        b = b.set_column_statistics_enabled(ColumnPath::from(*col), EnabledStatistics::None);
    }
    b.set_compression(Compression::ZSTD(level))
        .set_max_row_group_row_count(Some(MAX_ROW_GROUP_ROWS))
        .set_data_page_row_count_limit(PAGE_ROWS)
        .set_write_batch_size(WRITE_BATCH)
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_sorting_columns(sorted_by_time(table).then(|| {
            vec![SortingColumn {
                column_idx: 0,
                descending: false,
                nulls_first: false,
            }]
        }))
        .set_column_dictionary_enabled(ts.clone(), false)
        .set_column_encoding(ts, Encoding::DELTA_BINARY_PACKED)
        .set_key_value_metadata(Some(kv))
        .set_created_by(concat!("kreq ", env!("CARGO_PKG_VERSION")).to_owned())
        .build()
}

/// Whether files of `table` are sorted by time, which their metadata then declares: only
/// `events` (by `ts_ns`, its first column; [`crate::table::Table::sorted_by`]).
pub fn sorted_by_time(table: &str) -> bool {
    crate::table::Table::named(table).is_some_and(|t| t.sorted_by.is_some())
}

/// Writes `batches` as one Parquet file of `table` at `path` so that it is valid whenever it is
/// visible: into `path.tmp`, fsynced, then renamed over `path` (which may be the file the
/// batches are read from). Returns the file's size. On error `path.tmp` is removed and `path`
/// is untouched.
pub fn write_parquet<E>(
    path: &Path,
    table: &str,
    schema: arrow_schema::SchemaRef,
    batches: impl IntoIterator<Item = Result<arrow_array::RecordBatch, E>>,
    zstd_level: i32,
    metadata: &[(String, String)],
) -> Result<u64, WriteError<E>> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(TMP_SUFFIX);
    let tmp = PathBuf::from(tmp);
    let write = || -> Result<u64, WriteError<E>> {
        let file = std::fs::File::create(&tmp).map_err(WriteError::Io)?;
        let props = properties(table, zstd_level, metadata);
        let mut w = ArrowWriter::try_new(file, schema, Some(props)).map_err(WriteError::Parquet)?;
        for b in batches {
            w.write(&b.map_err(WriteError::Batch)?)
                .map_err(WriteError::Parquet)?;
        }
        let file = w.into_inner().map_err(WriteError::Parquet)?;
        file.sync_all().map_err(WriteError::Io)?;
        let size = file.metadata().map_err(WriteError::Io)?.len();
        std::fs::rename(&tmp, path).map_err(WriteError::Io)?;
        Ok(size)
    };
    let written = write();
    if written.is_err() {
        // Never leave a partial file behind; the error that matters is the one returned.
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// Why [`write_parquet`] failed: the file system, Parquet, or the batch source (`E`).
#[derive(Debug)]
pub enum WriteError<E> {
    /// Creating, syncing or renaming the file.
    Io(std::io::Error),
    /// Encoding.
    Parquet(parquet::errors::ParquetError),
    /// The batches' own error.
    Batch(E),
}
