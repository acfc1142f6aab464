//! Reading a dataset's tables: part files in name order, whole batches, typed columns.

use std::fs::File;
use std::path::{Path, PathBuf};

use arrow::array::RecordBatch;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::{Error, Result};

/// The `*.parquet` parts of a table directory in name order (none when it does not exist).
pub(crate) fn parts_of(dir: &Path) -> Result<Vec<PathBuf>> {
    if !dir.exists() {
        return Ok(Vec::new());
    }
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|source| Error::Io {
            path: dir.to_owned(),
            source,
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "parquet"))
        .collect();
    v.sort();
    Ok(v)
}

/// Every batch of every part of the table directory `dir`. For small tables (results,
/// lost events) and tests; events are streamed with `PartReader`.
pub fn read_table(dir: &Path) -> Result<Vec<RecordBatch>> {
    let mut out = Vec::new();
    for p in parts_of(dir)? {
        let f = File::open(&p).map_err(|source| Error::Io {
            path: p.clone(),
            source,
        })?;
        let pq = |source| Error::Parquet {
            path: p.clone(),
            source,
        };
        for b in ParquetRecordBatchReaderBuilder::try_new(f)
            .map_err(pq)?
            .build()
            .map_err(pq)?
        {
            out.push(b.map_err(|source| Error::Arrow {
                path: p.clone(),
                source,
            })?);
        }
    }
    Ok(out)
}

/// Column `name` of `b` as array type `T`, or a message saying why not.
pub(crate) fn col<'a, T: 'static>(
    b: &'a RecordBatch,
    name: &str,
) -> std::result::Result<&'a T, String> {
    b.column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<T>())
        .ok_or_else(|| format!("column `{name}` is missing or has an unexpected type"))
}
