//! The `lost_events` table: one row per report of events the trace did not keep.

use std::sync::{Arc, OnceLock};

use arrow_schema::{DataType, Field, Schema, SchemaRef};

use crate::dict;

/// Time (Int64 ns) of the last event before the report in the input, null when none came
/// before it. Events on [`CPU`] were lost at or before the next event of that CPU.
pub const TS_NS: &str = "ts_ns";
/// CPU whose buffer lost events (UInt16).
pub const CPU: &str = "cpu";
/// Number of events lost (Int64), null when the source did not say how many.
pub const COUNT: &str = "count";
/// How the loss was reported (dictionary Utf8): `lost` (`CPU:N [LOST M EVENTS]` in
/// trace/trace_pipe text), `dropped` (trace-cmd's `CPU:N [M EVENTS DROPPED]`).
pub const KIND: &str = "kind";
/// Input file the report came from (dictionary Utf8; `-` for stdin).
pub const SOURCE: &str = "source";
/// 1-based line of the report in that input (Int64), null for binary inputs.
pub const LINE: &str = "line";

/// The Arrow schema of the `lost_events` table.
pub fn schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            Arc::new(Schema::new(vec![
                Field::new(TS_NS, DataType::Int64, true),
                Field::new(CPU, DataType::UInt16, false),
                Field::new(COUNT, DataType::Int64, true),
                Field::new(KIND, dict(), false),
                Field::new(SOURCE, dict(), false),
                Field::new(LINE, DataType::Int64, true),
            ]))
        })
        .clone()
}
