//! ftrace text (`trace`, `trace_pipe`, `trace-cmd report`): lines, event bodies and their
//! print formats, chunks of lines, and part files of time-ordered rows.

pub mod blocks;
pub mod body;
pub mod chunk;
pub mod formats;
pub mod line;
pub mod part;
pub mod reorder;

/// The text format an input's first bytes look like (stored in the manifest's `sources`).
pub fn detect_format(head: &[u8]) -> &'static str {
    let text = String::from_utf8_lossy(&head[..head.len().min(4096)]);
    let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    if first.starts_with("cpus=") {
        "trace-cmd-report"
    } else if first.starts_with("# tracer:") {
        "trace"
    } else {
        "trace_pipe"
    }
}
