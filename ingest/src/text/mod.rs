//! ftrace text (`trace`, `trace_pipe`, `trace-cmd report`): lines, event bodies and their
//! print formats, chunks of lines, and part files of time-ordered rows.

pub mod blocks;
pub mod body;
pub mod chunk;
pub mod formats;
pub mod line;
pub mod part;
pub mod reorder;

/// [`detect_format`] of the latency tracers' text (`# irqsoff latency trace v1.1.5 ...`).
pub const LATENCY: &str = "latency";
/// [`detect_format`] of the function_graph tracer's text (`# tracer: function_graph`).
pub const FUNCTION_GRAPH: &str = "function_graph";

/// The text format an input's first bytes look like (stored in the manifest's `sources`).
pub fn detect_format(head: &[u8]) -> &'static str {
    let text = String::from_utf8_lossy(&head[..head.len().min(4096)]);
    let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    if first.starts_with("cpus=") {
        "trace-cmd-report"
    } else if first.starts_with("# tracer:") {
        // The latency tracers (irqsoff, wakeup, ...) and function_graph print their own
        // layouts, not event lines: named, so that refusing them says what they are.
        if text.contains(" latency trace v") {
            LATENCY
        } else if first.trim_end().ends_with("function_graph") {
            FUNCTION_GRAPH
        } else {
            "trace"
        }
    } else {
        "trace_pipe"
    }
}
