//! The `edges` table: every linking decision the correlator made, as data.
//!
//! Each non-root span has exactly one incoming edge saying which rule joined it to its request
//! and how sure that rule is, so a user can see why two things were joined.

use std::sync::{Arc, OnceLock};

use arrow_schema::{DataType, Field, Schema, SchemaRef};

/// Request both spans belong to (UInt64).
pub const REQUEST_ID: &str = "request_id";
/// Span the link starts from (UInt64).
pub const FROM_SPAN: &str = "from_span";
/// Span the link leads to (UInt64).
pub const TO_SPAN: &str = "to_span";
/// Rule that made the link (dictionary Utf8), one of [`RULES`].
pub const RULE: &str = "rule";
/// Confidence of the link, 0 to 1 (Float32): its rule's, or lower where the correlator saw
/// the rule's premise fail (an unsettled event loop).
pub const CONFIDENCE: &str = "confidence";
/// When the link was made (Int64 ns, trace clock).
pub const TS_NS: &str = "ts_ns";

/// The linking rules, with what each means.
pub const RULES: &[(&str, &str)] = &[
    ("byte_stream", "bytes a span sent were read by the other end of the same connection (matched by byte position)"),
    ("thread_request", "a thread serving one request at a time sent on an outgoing connection"),
    ("event_loop", "an event-loop thread serving several requests sent on an outgoing connection; the request is the one it last read"),
    ("continuation", "an event loop wrote on an outgoing connection with no request read in the same turn: the request is the oldest one a read made due, first one whose reply arrived on that connection, else one read and not yet sent for"),
    ("turn", "an event loop's later turn on a request it already worked on: from where its previous turn on another request stopped to its next syscall for another request or a wait that blocked"),
    ("silent_step", "an event loop's callback that made no syscall, between two that did: the time between them is shared evenly among the callbacks due then (the kernel shows nothing that parts them)"),
    ("due_step", "an asyncio loop's step made due in the last iteration that made no syscall before the loop's first read after a wait: the time from the wait's return to that read is shared evenly among the steps due then"),
    ("handoff", "a thread with no request of its own worked, then answered on the request's connection: its work since it last came back from a wait was for that request (a pool worker the reading thread handed the request to)"),
    ("wakeup", "a thread with no request of its own was woken by a thread serving the request"),
    ("fork", "a thread forked by a thread serving the request"),
    ("reply_order", "a pool worker answered on a connection that carries several requests at once (HTTP/2): its work is the request of the caller thread that reading its reply woke, replies handed to woken callers in the order they were read"),
    ("reply_unseen", "a pool worker answered on a connection that carries several requests at once, and a caller that answered its own request with no wake seen took the answer: the one sent first after its call, of those no woken caller was handed, whose worker called out after the callee read the call"),
];

/// The Arrow schema of the `edges` table.
pub fn schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            Arc::new(Schema::new(vec![
                Field::new(REQUEST_ID, DataType::UInt64, false),
                Field::new(FROM_SPAN, DataType::UInt64, false),
                Field::new(TO_SPAN, DataType::UInt64, false),
                Field::new(RULE, crate::dict(), false),
                Field::new(CONFIDENCE, DataType::Float32, false),
                Field::new(TS_NS, DataType::Int64, false),
            ]))
        })
        .clone()
}
