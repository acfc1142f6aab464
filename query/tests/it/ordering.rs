//! Sort orders come from kreq's schemas, not from the files: a dataset whose files declare an
//! order they do not have (as kreq wrote before schema 4) still sorts and groups correctly.

use std::path::Path;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::UInt64Type;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use parquet::file::metadata::SortingColumn;
use parquet::file::properties::WriterProperties;

/// The sorting columns `path` declares in its first row group.
fn declared(path: &Path) -> Option<Vec<SortingColumn>> {
    let f = std::fs::File::open(path).expect("open");
    let b = ParquetRecordBatchReaderBuilder::try_new(f).expect("reader");
    b.metadata()
        .row_groups()
        .first()?
        .sorting_columns()
        .cloned()
}

/// Rewrites `path` declaring its first column sorted, whatever its order.
fn declare_first_column_sorted(path: &Path) -> Vec<RecordBatch> {
    let f = std::fs::File::open(path).expect("open");
    let reader = ParquetRecordBatchReaderBuilder::try_new(f)
        .expect("reader")
        .build()
        .expect("build");
    let batches: Vec<RecordBatch> = reader.collect::<Result<_, _>>().expect("read");
    let props = WriterProperties::builder()
        .set_sorting_columns(Some(vec![SortingColumn {
            column_idx: 0,
            descending: false,
            nulls_first: false,
        }]))
        .build();
    let out = std::fs::File::create(path).expect("create");
    let mut w = ArrowWriter::try_new(out, batches[0].schema(), Some(props)).expect("writer");
    for b in &batches {
        w.write(b).expect("write");
    }
    w.close().expect("close");
    batches
}

fn first_column_sorted(batches: &[RecordBatch]) -> bool {
    let v: Vec<u64> = batches
        .iter()
        .flat_map(|b| {
            b.column(0)
                .as_primitive::<UInt64Type>()
                .iter()
                .flatten()
                .collect::<Vec<_>>()
        })
        .collect();
    v.windows(2).all(|w| w[0] <= w[1])
}

#[test]
fn only_events_files_declare_an_order() {
    let ds = super::s1();
    for (dir, sorted) in [
        ("events", true),
        ("requests", false),
        ("spans", false),
        ("edges", false),
    ] {
        let part = ds.join(dir).join("part-000000.parquet");
        assert_eq!(declared(&part).is_some(), sorted, "{}", part.display());
    }
}

#[test]
fn a_false_declared_order_is_ignored() {
    let src = super::s1();
    let ds = src.with_file_name("ordering-false-declaration");
    let _ = std::fs::remove_dir_all(&ds);
    std::fs::create_dir_all(&ds).expect("dir");
    for e in walk(src) {
        let to = ds.join(e.strip_prefix(src).expect("prefix"));
        std::fs::create_dir_all(to.parent().expect("parent")).expect("dir");
        std::fs::copy(&e, &to).expect("copy");
    }
    for t in ["requests", "spans"] {
        let batches = declare_first_column_sorted(&ds.join(t).join("part-000000.parquet"));
        // The premise: these rows are not in request_id order.
        assert!(!first_column_sorted(&batches), "{t} happens to be sorted");
    }
    super::runtime().block_on(async {
        let (ctx, _) = kreq_query::open(&ds).await.expect("open");
        let sorted = kreq_query::sql(&ctx, "SELECT request_id FROM requests ORDER BY request_id")
            .await
            .expect("query");
        assert!(first_column_sorted(&sorted));
        let counts = kreq_query::sql(
            &ctx,
            "SELECT (SELECT count(*) FROM (SELECT request_id FROM spans GROUP BY request_id)), \
             (SELECT count(DISTINCT request_id) FROM spans)",
        )
        .await
        .expect("query");
        let (groups, distinct) = (counts[0].column(0), counts[0].column(1));
        assert_eq!(
            groups
                .as_primitive::<arrow::datatypes::Int64Type>()
                .value(0),
            distinct
                .as_primitive::<arrow::datatypes::Int64Type>()
                .value(0)
        );
        assert!(!groups.is_null(0));
    });
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).expect("read_dir") {
        let p = e.expect("entry").path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
