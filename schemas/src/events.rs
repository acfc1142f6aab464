//! The `events` table: one row per recorded kernel event.
//!
//! Every field of every event is queryable: the fields that correlation needs are promoted to
//! typed columns (see [`PROMOTED_FIELDS`]); all other fields are kept, as text exactly as the
//! trace printed them, in the [`FIELDS`] map. A field lives in exactly one of the two places.
//! A typed value that does not parse (say a `fd` that is not a number) stays in the map.

use std::sync::{Arc, OnceLock};

use arrow_schema::{DataType, Field, Fields, Schema, SchemaRef};

/// Event time in ns (Int64), trace clock named in the dataset manifest. Text input has µs
/// resolution (the last three digits are zero).
pub const TS_NS: &str = "ts_ns";
/// CPU the event was recorded on (UInt16).
pub const CPU: &str = "cpu";
/// Thread id (Int32): ftrace's `pid` column.
pub const TID: &str = "tid";
/// Thread group id (Int32, null when the trace did not record it or printed `(-------)`).
pub const TGID: &str = "tgid";
/// Task name (dictionary Utf8) as printed by the trace; `<idle>` and `<...>` kept verbatim.
pub const COMM: &str = "comm";
/// Interrupts were disabled (`d` or `D`). Null when the input had no flags column.
pub const IRQS_OFF: &str = "irqs_off";
/// Bottom halves were disabled (`b` or `D`). Null when the input had no flags column.
pub const BH_OFF: &str = "bh_off";
/// A reschedule was pending (`N`, `n`, `p`, `L`, `B`, ...). Null without a flags column.
pub const NEED_RESCHED: &str = "need_resched";
/// Execution context (dictionary Utf8): `task`, `softirq`, `hardirq`, `hardirq_in_softirq`,
/// `nmi`, `nmi_in_hardirq`. Null without a flags column.
pub const IRQ_CONTEXT: &str = "irq_context";
/// Preemption depth (UInt8, 0 for `.`). Null without a flags column.
pub const PREEMPT_DEPTH: &str = "preempt_depth";
/// Migrate-disable depth (UInt8, 0 for `.`). Null when the input had only 4 flag characters.
pub const MIGRATE_DISABLE: &str = "migrate_disable";
/// Event name (dictionary Utf8) as tracefs names it: `sched_switch`, `sys_enter_read`,
/// `sys_exit_read`, `tcp_probe`, ...
pub const EVENT: &str = "event";
/// Syscall enter: the `fd` argument (Int64).
pub const FD: &str = "fd";
/// Syscall enter: the requested byte count, from a `count`, `len` or `size` argument (Int64).
pub const COUNT: &str = "count";
/// Syscall exit: the return value (Int64; negative for `-errno`).
pub const RET: &str = "ret";
/// `sched_switch`: thread switched out (Int32).
pub const PREV_TID: &str = "prev_tid";
/// `sched_switch`: state of the thread switched out (dictionary Utf8: `R`, `S`, `D`, `R+`, ...).
pub const PREV_STATE: &str = "prev_state";
/// `sched_switch`: thread switched in (Int32).
pub const NEXT_TID: &str = "next_tid";
/// `sched_wakeup`, `sched_wakeup_new`, `sched_waking`: the woken thread (Int32).
pub const WAKE_TID: &str = "wake_tid";
/// `sched_wakeup*`: the CPU the woken thread will run on (Int32).
pub const WAKE_CPU: &str = "wake_cpu";
/// `sched_process_fork`: the forking thread (Int32).
pub const PARENT_TID: &str = "parent_tid";
/// `sched_process_fork`: the new thread (Int32).
pub const CHILD_TID: &str = "child_tid";
/// Socket address (`struct sock *`, UInt64): `sk address` of `sock_*_length`, `skaddr` of
/// `tcp_probe` and `inet_sock_set_state`. Hashed in text (stable within one boot), raw in binary.
pub const SK_ADDR: &str = "sk_addr";
/// Socket-buffer address (`struct sk_buff *`, UInt64), `skbaddr` of net and tcp events.
pub const SKB_ADDR: &str = "skb_addr";
/// Socket cookie (UInt64), `sock_cookie` of tcp events: unique per socket within a boot.
pub const SOCK_COOKIE: &str = "sock_cookie";
/// Byte length (Int64): `length` of `sock_*_length`, `data_len` of `tcp_probe`, `len` of net
/// events.
pub const LENGTH: &str = "length";
/// Source address (dictionary Utf8, `127.0.0.1` or an IPv6 text form).
pub const SADDR: &str = "saddr";
/// Source port (UInt16).
pub const SPORT: &str = "sport";
/// Destination address (dictionary Utf8).
pub const DADDR: &str = "daddr";
/// Destination port (UInt16).
pub const DPORT: &str = "dport";
/// Syscall enter: the `op` argument (Int64), of `futex` (`FUTEX_WAIT_BITSET | FUTEX_PRIVATE_FLAG`
/// is 137) and `epoll_ctl`. Correlation tells a pool worker's wait at its queue from a lock's
/// by it.
pub const OP: &str = "op";
/// `sys_enter_futex`: the address of the timeout (UInt64, `utime`); 0 for a wait with no
/// timeout. Hex in text traces, as the kernel prints it.
pub const UTIME: &str = "utime";
/// All fields not promoted to a typed column: Map<Utf8, Utf8>, null when there are none.
pub const FIELDS: &str = "fields";
/// Request this event served (UInt64, see the `requests` table). Null until `kreq correlate`
/// has run, and for events it did not attribute to a request.
pub const REQUEST_ID: &str = "request_id";
/// Span of [`REQUEST_ID`] this event belongs to (UInt64, see the `spans` table); null when
/// `request_id` is null.
pub const SPAN_ID: &str = "span_id";

/// Fields promoted to typed columns, as `(event-name pattern, field name, column)`. A pattern
/// ending in `*` is a prefix. Documented here so users know where each field lives.
pub const PROMOTED_FIELDS: &[(&str, &str, &str)] = &[
    ("sys_enter_*", "fd", FD),
    ("sys_enter_*", "count", COUNT),
    ("sys_enter_*", "len", COUNT),
    ("sys_enter_*", "size", COUNT),
    ("sys_exit_*", "ret", RET),
    ("sched_switch", "prev_pid", PREV_TID),
    ("sched_switch", "prev_state", PREV_STATE),
    ("sched_switch", "next_pid", NEXT_TID),
    ("sched_wakeup*", "pid", WAKE_TID),
    ("sched_wakeup*", "target_cpu", WAKE_CPU),
    ("sched_waking", "pid", WAKE_TID),
    ("sched_waking", "target_cpu", WAKE_CPU),
    ("sched_process_fork", "pid", PARENT_TID),
    ("sched_process_fork", "child_pid", CHILD_TID),
    ("*", "sk", SK_ADDR),
    ("*", "skaddr", SK_ADDR),
    ("*", "skbaddr", SKB_ADDR),
    ("*", "sock_cookie", SOCK_COOKIE),
    ("sock_*_length", "length", LENGTH),
    ("tcp_probe", "data_len", LENGTH),
    ("net_*", "len", LENGTH),
    ("netif_*", "len", LENGTH),
    ("*", "src", SADDR),
    ("*", "dest", DADDR),
    ("*", "saddr", SADDR),
    ("*", "daddr", DADDR),
    ("*", "sport", SPORT),
    ("*", "dport", DPORT),
    ("sys_enter_*", "op", OP),
    ("sys_enter_*", "utime", UTIME),
];

use crate::dict;

/// Key and value fields of the [`FIELDS`] map, shared by writers and readers.
pub fn fields_entries() -> Arc<Field> {
    Arc::new(Field::new(
        "entries",
        DataType::Struct(Fields::from(vec![
            Field::new("keys", DataType::Utf8, false),
            Field::new("values", DataType::Utf8, true),
        ])),
        false,
    ))
}

/// The Arrow schema of the `events` table, column order fixed.
pub fn schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            Arc::new(Schema::new(vec![
                Field::new(TS_NS, DataType::Int64, false),
                Field::new(CPU, DataType::UInt16, false),
                Field::new(TID, DataType::Int32, false),
                Field::new(TGID, DataType::Int32, true),
                Field::new(COMM, dict(), false),
                Field::new(IRQS_OFF, DataType::Boolean, true),
                Field::new(BH_OFF, DataType::Boolean, true),
                Field::new(NEED_RESCHED, DataType::Boolean, true),
                Field::new(IRQ_CONTEXT, dict(), true),
                Field::new(PREEMPT_DEPTH, DataType::UInt8, true),
                Field::new(MIGRATE_DISABLE, DataType::UInt8, true),
                Field::new(EVENT, dict(), false),
                Field::new(FD, DataType::Int64, true),
                Field::new(COUNT, DataType::Int64, true),
                Field::new(RET, DataType::Int64, true),
                Field::new(PREV_TID, DataType::Int32, true),
                Field::new(PREV_STATE, dict(), true),
                Field::new(NEXT_TID, DataType::Int32, true),
                Field::new(WAKE_TID, DataType::Int32, true),
                Field::new(WAKE_CPU, DataType::Int32, true),
                Field::new(PARENT_TID, DataType::Int32, true),
                Field::new(CHILD_TID, DataType::Int32, true),
                Field::new(SK_ADDR, DataType::UInt64, true),
                Field::new(SKB_ADDR, DataType::UInt64, true),
                Field::new(SOCK_COOKIE, DataType::UInt64, true),
                Field::new(LENGTH, DataType::Int64, true),
                Field::new(SADDR, dict(), true),
                Field::new(SPORT, DataType::UInt16, true),
                Field::new(DADDR, dict(), true),
                Field::new(DPORT, DataType::UInt16, true),
                Field::new(OP, DataType::Int64, true),
                Field::new(UTIME, DataType::UInt64, true),
                Field::new(FIELDS, DataType::Map(fields_entries(), false), true),
                Field::new(REQUEST_ID, DataType::UInt64, true),
                Field::new(SPAN_ID, DataType::UInt64, true),
            ]))
        })
        .clone()
}
