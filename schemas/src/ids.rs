//! Newtypes for the values that are easy to confuse as bare integers.

/// A trace timestamp in nanoseconds of the recording's trace clock (see
/// [`crate::dataset::Manifest::trace_clock`]). For counter clocks (`counter`, `x86-tsc`) it
/// holds the raw counter value instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct TimestampNs(pub i64);

/// A kernel thread id (what ftrace calls `pid`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Tid(pub i32);

/// A CPU number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Cpu(pub u16);
