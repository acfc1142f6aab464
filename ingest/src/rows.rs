//! What every reader produces, text or binary: rows of the `events` table with their side
//! reports (lost events, malformed lines), and the row header values they share.

use arrow::record_batch::RecordBatch;

/// Rows per batch handed to the Parquet writer: small enough that a batch stays in cache and
/// its memory is reused by the next, large enough to amortise per-batch work.
pub const BATCH_ROWS: usize = 16 * 1024;

/// Decoded flag characters (`d..2.` and friends).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flags {
    /// `d` or `D`.
    pub irqs_off: bool,
    /// `b` or `D`.
    pub bh_off: bool,
    /// Any need-resched character (`N`, `n`, `p`, `L`, `B`, ...).
    pub need_resched: bool,
    /// Execution context.
    pub context: IrqContext,
    /// Preemption depth.
    pub preempt_depth: u8,
    /// Migrate-disable depth (None with 4-character flags).
    pub migrate_disable: Option<u8>,
}

/// Execution context from the third flag character.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IrqContext {
    /// `.`
    Task,
    /// `s`
    Softirq,
    /// `h`
    Hardirq,
    /// `H`
    HardirqInSoftirq,
    /// `z`
    Nmi,
    /// `Z`
    NmiInHardirq,
}

impl IrqContext {
    /// Name stored in the `irq_context` column.
    pub fn as_str(self) -> &'static str {
        match self {
            IrqContext::Task => "task",
            IrqContext::Softirq => "softirq",
            IrqContext::Hardirq => "hardirq",
            IrqContext::HardirqInSoftirq => "hardirq_in_softirq",
            IrqContext::Nmi => "nmi",
            IrqContext::NmiInHardirq => "nmi_in_hardirq",
        }
    }
}

/// How a lost-events report was worded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LostKind {
    /// `CPU:N [LOST M EVENTS]` (trace, trace_pipe).
    Lost,
    /// `CPU:N [M EVENTS DROPPED]` (trace-cmd report).
    Dropped,
    /// A ring-buffer page's missed-events flag (binary input).
    Missed,
    /// `overrun` in `per_cpu/cpuN/stats`: events overwritten before they were read.
    Overrun,
    /// `dropped events` in `per_cpu/cpuN/stats`: events not written because the buffer was full.
    StatsDropped,
}

impl LostKind {
    /// Name stored in the `kind` column of `lost_events`.
    pub fn as_str(self) -> &'static str {
        match self {
            LostKind::Lost => "lost",
            LostKind::Dropped => "dropped",
            LostKind::Missed => "missed",
            LostKind::Overrun => "overrun",
            LostKind::StatsDropped => "stats_dropped",
        }
    }
}

/// A lost-events report: a text line, a page's missed-events flag, or a CPU's stats.
#[derive(Debug, Clone, PartialEq)]
pub struct LostReport {
    /// Time of the last event before it in this chunk (filled across chunks by the caller).
    pub ts_ns: Option<i64>,
    /// CPU that lost events.
    pub cpu: u16,
    /// Count, when stated.
    pub count: Option<u64>,
    /// Wording.
    pub kind: LostKind,
    /// 1-based line number (text input only).
    pub line: Option<u64>,
}

/// A line that could not be parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct MalformedLine {
    /// 1-based line number.
    pub line: u64,
    /// Byte offset of the line's start in the input.
    pub offset: u64,
    /// What was wrong.
    pub reason: &'static str,
    /// The line, cut to 200 bytes.
    pub text: String,
}

/// The result of parsing a chunk.
#[derive(Debug)]
pub struct ParsedChunk {
    /// Events sorted by `ts_ns` (stable: equal times keep input order).
    pub events: RecordBatch,
    /// Lost-event reports in input order.
    pub lost: Vec<LostReport>,
    /// The first [`crate::text::chunk::MAX_MALFORMED_KEPT`] malformed lines.
    pub malformed: Vec<MalformedLine>,
    /// All malformed lines.
    pub malformed_count: u64,
    /// Lines in the chunk.
    pub lines: u64,
    /// Time of the last event in input order.
    pub last_ts: Option<i64>,
    /// True when some timestamp was a raw counter rather than `secs.frac`.
    pub counter_clock: bool,
}
