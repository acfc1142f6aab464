//! Writing query results: an aligned table, CSV, NDJSON or Parquet.

use std::io::Write;
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, FieldRef, Schema};

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

/// `batch` with each column that `convert` replaces (a new field and array) replaced.
fn replace_columns(
    batch: &RecordBatch,
    mut convert: impl FnMut(&FieldRef, &ArrayRef) -> Result<Option<(Field, ArrayRef)>>,
) -> Result<RecordBatch> {
    let mut fields = Vec::with_capacity(batch.num_columns());
    let mut cols = Vec::with_capacity(batch.num_columns());
    for (f, c) in batch.schema().fields().iter().zip(batch.columns()) {
        let (f, c) = convert(f, c)?.unwrap_or_else(|| ((**f).clone(), c.clone()));
        fields.push(f);
        cols.push(c);
    }
    Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), cols)?)
}

/// Dictionary columns become their value type: CSV and JSON writers want plain values.
pub fn plain(batch: &RecordBatch) -> Result<RecordBatch> {
    replace_columns(batch, |f, c| match f.data_type() {
        DataType::Dictionary(_, v) => Ok(Some((
            Field::new(f.name(), (**v).clone(), f.is_nullable()),
            cast(c, v)?,
        ))),
        _ => Ok(None),
    })
}

/// Nested columns (maps such as `events.fields`, lists, structs) become their JSON text: CSV
/// has no nested values, and JSON is what notebooks and spreadsheets can take apart.
fn nested_as_json(batch: RecordBatch) -> Result<RecordBatch> {
    if !batch
        .schema()
        .fields()
        .iter()
        .any(|f| f.data_type().is_nested())
    {
        return Ok(batch);
    }
    let opts = arrow::json::writer::EncoderOptions::default();
    replace_columns(&batch, |f, c| {
        if !f.data_type().is_nested() {
            return Ok(None);
        }
        let mut enc = arrow::json::writer::make_encoder(f, c.as_ref(), &opts)?;
        let mut text = arrow::array::StringBuilder::with_capacity(c.len(), c.len() * 16);
        let mut buf = Vec::new();
        for i in 0..c.len() {
            if enc.is_null(i) {
                text.append_null();
                continue;
            }
            buf.clear();
            enc.encode(i, &mut buf);
            text.append_value(String::from_utf8_lossy(&buf));
        }
        let json = Field::new(f.name(), DataType::Utf8, f.is_nullable());
        Ok(Some((json, Arc::new(text.finish()) as ArrayRef)))
    })
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
            let batches: Vec<RecordBatch> = batches
                .into_iter()
                .map(nested_as_json)
                .collect::<Result<_>>()?;
            let schema = match batches.first() {
                Some(b) => b.schema(),
                None => nested_as_json(RecordBatch::new_empty(schema))?.schema(),
            };
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
