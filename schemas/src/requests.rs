//! The `requests` table: one row per request that entered through an ingress.
//!
//! A request starts when bytes arrive on a connection accepted at an ingress address and ends
//! with the last byte of the response sent back on that connection.

use std::sync::{Arc, OnceLock};

use arrow_schema::{DataType, Field, Schema, SchemaRef};

use crate::dict;

/// Request id (UInt64), unique within the dataset.
pub const REQUEST_ID: &str = "request_id";
/// Root span (the ingress server span) (UInt64).
pub const ROOT_SPAN_ID: &str = "root_span_id";
/// Client address of the ingress connection (dictionary Utf8).
pub const CLIENT_ADDR: &str = "client_addr";
/// Client port (UInt16).
pub const CLIENT_PORT: &str = "client_port";
/// Ingress (server) address (dictionary Utf8).
pub const SERVER_ADDR: &str = "server_addr";
/// Ingress port (UInt16).
pub const SERVER_PORT: &str = "server_port";
/// Thread that sent the request bytes, when the client was traced too (Int32).
pub const CLIENT_TID: &str = "client_tid";
/// Thread that received the request at the ingress (Int32).
pub const INGRESS_TID: &str = "ingress_tid";
/// Start: the request's first byte read at the ingress (Int64 ns, trace clock).
pub const START_NS: &str = "start_ns";
/// End: the last response byte sent at the ingress (Int64 ns).
pub const END_NS: &str = "end_ns";
/// `end_ns - start_ns` (Int64 ns).
pub const DURATION_NS: &str = "duration_ns";
/// Whether a response was sent back at the ingress (Boolean).
pub const RESPONDED: &str = "responded";
/// Distinct process names the request touched, in order of first touch (`List<Utf8>`).
pub const SERVICES: &str = "services";
/// Number of spans (UInt32).
pub const SPAN_COUNT: &str = "span_count";
/// Smallest confidence of the edges that built the request (Float32, 1 when it has none).
pub const MIN_CONFIDENCE: &str = "min_confidence";
/// False when lost events touch any CPU during the request's lifetime, or it never responded
/// (Boolean).
pub const COMPLETE: &str = "complete";
/// The critical hop: the span with the most self time (`spans.self_ns`; the smallest span id
/// among equals) (UInt64).
pub const CRITICAL_SPAN_ID: &str = "critical_span_id";

/// The Arrow schema of the `requests` table.
pub fn schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            Arc::new(Schema::new(vec![
                Field::new(REQUEST_ID, DataType::UInt64, false),
                Field::new(ROOT_SPAN_ID, DataType::UInt64, false),
                Field::new(CLIENT_ADDR, dict(), true),
                Field::new(CLIENT_PORT, DataType::UInt16, true),
                Field::new(SERVER_ADDR, dict(), true),
                Field::new(SERVER_PORT, DataType::UInt16, true),
                Field::new(CLIENT_TID, DataType::Int32, true),
                Field::new(INGRESS_TID, DataType::Int32, false),
                Field::new(START_NS, DataType::Int64, false),
                Field::new(END_NS, DataType::Int64, false),
                Field::new(DURATION_NS, DataType::Int64, false),
                Field::new(RESPONDED, DataType::Boolean, false),
                Field::new(
                    SERVICES,
                    DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
                    false,
                ),
                Field::new(SPAN_COUNT, DataType::UInt32, false),
                Field::new(MIN_CONFIDENCE, DataType::Float32, false),
                Field::new(COMPLETE, DataType::Boolean, false),
                Field::new(CRITICAL_SPAN_ID, DataType::UInt64, false),
            ]))
        })
        .clone()
}
