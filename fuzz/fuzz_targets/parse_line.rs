//! Any bytes through the line parser and field splitter: must never panic.
#![no_main]

use kreq_ingest::text::line::{parse_line, Line};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for line in text.split('\n') {
        if let Line::Event(ev) = parse_line(line) {
            let mut fields = Vec::new();
            ev.body.fields(&mut fields);
            let _ = ev.body.name.to_tracefs();
        }
    }
});
