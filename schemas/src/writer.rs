//! Parquet writer settings shared by every kreq writer.

use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::metadata::{KeyValue, SortingColumn};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

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

/// Writer properties for a kreq table.
///
/// Every file is zstd-compressed, carries page-level statistics (min/max per page, so time
/// filters prune pages as well as row groups), declares itself sorted by `ts_ns` (writers sort
/// each row group), and stores [`SCHEMA_VERSION`], the table name and `extra` in its metadata.
pub fn properties(table: &str, zstd_level: i32, extra: &[(String, String)]) -> WriterProperties {
    let level = ZstdLevel::try_new(zstd_level).unwrap_or_default();
    let mut kv = vec![
        KeyValue::new(SCHEMA_VERSION_KEY.to_owned(), SCHEMA_VERSION.to_owned()),
        KeyValue::new(TABLE_KEY.to_owned(), table.to_owned()),
    ];
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
    WriterProperties::builder()
        .set_column_statistics_enabled(map_leaf("keys"), EnabledStatistics::None)
        .set_column_statistics_enabled(map_leaf("values"), EnabledStatistics::None)
        .set_compression(Compression::ZSTD(level))
        .set_max_row_group_row_count(Some(MAX_ROW_GROUP_ROWS))
        .set_data_page_row_count_limit(PAGE_ROWS)
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_sorting_columns(Some(vec![SortingColumn {
            column_idx: 0,
            descending: false,
            nulls_first: false,
        }]))
        .set_column_dictionary_enabled(ts.clone(), false)
        .set_column_encoding(ts, Encoding::DELTA_BINARY_PACKED)
        .set_key_value_metadata(Some(kv))
        .set_created_by(concat!("kreq ", env!("CARGO_PKG_VERSION")).to_owned())
        .build()
}
