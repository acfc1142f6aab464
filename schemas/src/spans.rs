//! The `spans` table: one row per unit of work of one request on one thread and connection.
//!
//! A `server` span starts when a request's bytes arrive on a socket the thread serves and ends
//! when its last response byte is sent there; a `client` span runs from the first byte a thread
//! sends on an outgoing connection for a request to the last byte of the reply it reads;
//! an `internal` span is work a thread did for a request it was handed (wakeup, fork) without
//! a socket of its own. Its time is split, from the scheduler events of its thread, into on-CPU,
//! runnable (ready, waiting for a CPU) and blocked by reason; the parts add up to the duration.

use std::sync::{Arc, OnceLock};

use arrow_schema::{DataType, Field, Schema, SchemaRef};

/// Request the span belongs to (UInt64).
pub const REQUEST_ID: &str = "request_id";
/// Span id (UInt64), unique within the dataset.
pub const SPAN_ID: &str = "span_id";
/// Span this one was caused by (UInt64); null for the root span at the ingress.
pub const PARENT_SPAN_ID: &str = "parent_span_id";
/// `server`, `client` or `internal` (dictionary Utf8).
pub const KIND: &str = "kind";
/// Thread that did the work (Int32).
pub const TID: &str = "tid";
/// Process (thread group) of [`TID`] (Int32, null when the trace had no tgid).
pub const PID: &str = "pid";
/// Task name of [`TID`] (dictionary Utf8).
pub const COMM: &str = "comm";
/// Start (Int64 ns, trace clock).
pub const START_NS: &str = "start_ns";
/// End (Int64 ns, trace clock).
pub const END_NS: &str = "end_ns";
/// `end_ns - start_ns` (Int64 ns).
pub const DURATION_NS: &str = "duration_ns";
/// Local address of the span's connection (dictionary Utf8; null for internal spans).
pub const LOCAL_ADDR: &str = "local_addr";
/// Local port (UInt16).
pub const LOCAL_PORT: &str = "local_port";
/// Peer address (dictionary Utf8).
pub const PEER_ADDR: &str = "peer_addr";
/// Peer port (UInt16).
pub const PEER_PORT: &str = "peer_port";
/// Bytes received on the connection for this span (Int64).
pub const BYTES_IN: &str = "bytes_in";
/// Bytes sent on the connection for this span (Int64).
pub const BYTES_OUT: &str = "bytes_out";
/// Time the thread ran on a CPU during the span (Int64 ns).
pub const CPU_NS: &str = "cpu_ns";
/// Time the thread was ready but waiting for a CPU (Int64 ns).
pub const RUNNABLE_NS: &str = "runnable_ns";
/// Time the thread was blocked, all reasons (Int64 ns).
pub const BLOCKED_NS: &str = "blocked_ns";
/// Blocked in a network syscall (socket read/write, accept, connect, epoll) (Int64 ns).
pub const BLOCKED_NETWORK_NS: &str = "blocked_network_ns";
/// Blocked in uninterruptible sleep in file I/O (Int64 ns).
pub const BLOCKED_DISK_NS: &str = "blocked_disk_ns";
/// Blocked in futex or another lock wait (Int64 ns).
pub const BLOCKED_LOCK_NS: &str = "blocked_lock_ns";
/// Blocked for any other or unknown reason (Int64 ns).
pub const BLOCKED_OTHER_NS: &str = "blocked_other_ns";
/// Time the thread's state was not known, e.g. before its first scheduler event (Int64 ns).
pub const UNKNOWN_NS: &str = "unknown_ns";
/// Events labelled with this span (Int64).
pub const EVENTS: &str = "events";
/// This hop's own time (Int64 ns), its exclusive time: each instant of the request (from its
/// `start_ns` to its `end_ns`) counts for the deepest span open then (the latest started among
/// equals; the root when none is open). For a server or internal span that is its duration
/// minus its calls; for a client span the time on the wire, its duration minus the callee's
/// server span. A request's spans' self times add up to its duration. A client span's split
/// of it says what the threads at the two ends did while its bytes were on their way (the
/// callee's thread until it read the call, the caller's until it read the reply): blocked
/// (waiting for the bytes: network), runnable (woken, waiting for a CPU), on-CPU (running
/// other work before reading); the rest is not known.
pub const SELF_NS: &str = "self_ns";
/// [`CPU_NS`] minus the client children's, fitted to [`SELF_NS`]; for a
/// client span, the same part of its wire time (see [`SELF_NS`]) (Int64 ns).
pub const SELF_CPU_NS: &str = "self_cpu_ns";
/// [`RUNNABLE_NS`] minus the client children's, fitted to [`SELF_NS`]; for a
/// client span, the same part of its wire time (see [`SELF_NS`]) (Int64 ns).
pub const SELF_RUNNABLE_NS: &str = "self_runnable_ns";
/// [`BLOCKED_NETWORK_NS`] minus the client children's, fitted to [`SELF_NS`]; for a
/// client span, the same part of its wire time (see [`SELF_NS`]) (Int64 ns).
pub const SELF_BLOCKED_NETWORK_NS: &str = "self_blocked_network_ns";
/// [`BLOCKED_DISK_NS`] minus the client children's, fitted to [`SELF_NS`]; for a
/// client span, the same part of its wire time (see [`SELF_NS`]) (Int64 ns).
pub const SELF_BLOCKED_DISK_NS: &str = "self_blocked_disk_ns";
/// [`BLOCKED_LOCK_NS`] minus the client children's, fitted to [`SELF_NS`]; for a
/// client span, the same part of its wire time (see [`SELF_NS`]) (Int64 ns).
pub const SELF_BLOCKED_LOCK_NS: &str = "self_blocked_lock_ns";
/// [`BLOCKED_OTHER_NS`] minus the client children's, fitted to [`SELF_NS`]; for a
/// client span, the same part of its wire time (see [`SELF_NS`]) (Int64 ns).
pub const SELF_BLOCKED_OTHER_NS: &str = "self_blocked_other_ns";
/// The thread that ended the span, when not [`TID`] (Int32, null otherwise): a client call
/// whose reply another thread read. A Go goroutine parked in a call resumes on whichever OS
/// thread the scheduler gives it; a pool's reply may be read by another worker. The call's
/// send was on `tid`, its reply read on `end_tid`, and `tid` was free for other work between.
pub const END_TID: &str = "end_tid";

use crate::dict;

/// The Arrow schema of the `spans` table.
pub fn schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            let i64n = |n: &str| Field::new(n, DataType::Int64, false);
            Arc::new(Schema::new(vec![
                Field::new(REQUEST_ID, DataType::UInt64, false),
                Field::new(SPAN_ID, DataType::UInt64, false),
                Field::new(PARENT_SPAN_ID, DataType::UInt64, true),
                Field::new(KIND, dict(), false),
                Field::new(TID, DataType::Int32, false),
                Field::new(PID, DataType::Int32, true),
                Field::new(COMM, dict(), true),
                i64n(START_NS),
                i64n(END_NS),
                i64n(DURATION_NS),
                Field::new(LOCAL_ADDR, dict(), true),
                Field::new(LOCAL_PORT, DataType::UInt16, true),
                Field::new(PEER_ADDR, dict(), true),
                Field::new(PEER_PORT, DataType::UInt16, true),
                i64n(BYTES_IN),
                i64n(BYTES_OUT),
                i64n(CPU_NS),
                i64n(RUNNABLE_NS),
                i64n(BLOCKED_NS),
                i64n(BLOCKED_NETWORK_NS),
                i64n(BLOCKED_DISK_NS),
                i64n(BLOCKED_LOCK_NS),
                i64n(BLOCKED_OTHER_NS),
                i64n(UNKNOWN_NS),
                i64n(EVENTS),
                i64n(SELF_NS),
                i64n(SELF_CPU_NS),
                i64n(SELF_RUNNABLE_NS),
                i64n(SELF_BLOCKED_NETWORK_NS),
                i64n(SELF_BLOCKED_DISK_NS),
                i64n(SELF_BLOCKED_LOCK_NS),
                i64n(SELF_BLOCKED_OTHER_NS),
                Field::new(END_TID, DataType::Int32, true),
            ]))
        })
        .clone()
}
