//! Integration tests of kreq-ingest: one binary, one module per concern.

mod lines;
mod pipeline;
mod snapshots;
mod tracedat;

use kreq_ingest::text::line::{parse_line, EventLine, Line};

/// Parse a line that must be an event.
pub fn event(l: &str) -> EventLine<'_> {
    match parse_line(l) {
        Line::Event(e) => e,
        other => panic!("not an event: {other:?} for {l:?}"),
    }
}

/// Fields of an event as owned pairs.
pub fn fields(e: &EventLine<'_>) -> Vec<(String, String)> {
    let mut v = Vec::new();
    e.body.fields(&mut v);
    v.into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// Value of one field.
pub fn field(e: &EventLine<'_>, k: &str) -> Option<String> {
    fields(e)
        .into_iter()
        .find(|(key, _)| key == k)
        .map(|(_, v)| v)
}
