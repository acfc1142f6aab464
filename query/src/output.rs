//! Writing query results: an aligned table, CSV, NDJSON or Parquet.

use std::io::Write;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Schema};

use crate::Result;

/// Output format of `kreq sql`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Aligned text table.
    Table,
    /// CSV with a header row, plain values.
    Csv,
    /// One JSON object per line.
    Ndjson,
    /// A Parquet file (zstd).
    Parquet,
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "table" => Ok(Format::Table),
            "csv" => Ok(Format::Csv),
            "ndjson" | "json" => Ok(Format::Ndjson),
            "parquet" => Ok(Format::Parquet),
            _ => Err(format!(
                "unknown format {s:?}: expected table, csv, ndjson or parquet"
            )),
        }
    }
}

/// Dictionary columns become their value type: CSV and JSON writers want plain values.
pub fn plain(batch: &RecordBatch) -> Result<RecordBatch> {
    let mut fields = Vec::with_capacity(batch.num_columns());
    let mut cols = Vec::with_capacity(batch.num_columns());
    for (f, c) in batch.schema().fields().iter().zip(batch.columns()) {
        match f.data_type() {
            DataType::Dictionary(_, v) => {
                cols.push(cast(c, v)?);
                fields.push(Field::new(f.name(), (**v).clone(), f.is_nullable()));
            }
            _ => {
                cols.push(c.clone());
                fields.push((**f).clone());
            }
        }
    }
    Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), cols)?)
}

/// Writes `batches` to `out` in `format`. `schema` names the columns when there are no rows.
pub fn write(
    out: &mut dyn Write,
    format: Format,
    schema: &arrow::datatypes::SchemaRef,
    batches: &[RecordBatch],
) -> Result<()> {
    let batches: Vec<RecordBatch> = batches.iter().map(plain).collect::<Result<_>>()?;
    let schema = match batches.first() {
        Some(b) => b.schema(),
        None => plain(&RecordBatch::new_empty(schema.clone()))?.schema(),
    };
    match format {
        Format::Table => {
            let t = arrow::util::pretty::pretty_format_batches(&batches)?;
            if batches.iter().all(|b| b.num_rows() == 0) {
                let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
                writeln!(out, "{}\n(0 rows)", names.join(" | "))?;
            } else {
                writeln!(out, "{t}")?;
            }
        }
        Format::Csv => {
            let mut w = arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(out);
            if batches.is_empty() {
                w.write(&RecordBatch::new_empty(schema))?;
            }
            for b in &batches {
                w.write(b)?;
            }
        }
        Format::Ndjson => {
            let mut w = arrow::json::LineDelimitedWriter::new(out);
            for b in &batches {
                w.write(b)?;
            }
            w.finish()?;
        }
        Format::Parquet => {
            let mut buf = Vec::new();
            let props = parquet::file::properties::WriterProperties::builder()
                .set_compression(parquet::basic::Compression::ZSTD(Default::default()))
                .build();
            let mut w = parquet::arrow::ArrowWriter::try_new(&mut buf, schema, Some(props))?;
            for b in &batches {
                w.write(b)?;
            }
            w.close()?;
            out.write_all(&buf)?;
        }
    }
    Ok(())
}
