//! Any bytes through wrapper detection (systrace HTML, `atrace -z`) and unwrapping, then the
//! unwrapped text through the line parser, as `kreq ingest` reads such a file.
#![no_main]

use std::io::Read;

use kreq_ingest::text::chunk::{parse_chunk, ChunkPos};
use kreq_ingest::wrapped;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(w) = wrapped::detect(data) else {
        return;
    };
    let input = Box::new(std::io::Cursor::new(data.to_vec()));
    let Ok(reader) = wrapped::unwrap(w, input) else {
        return;
    };
    // A zlib stream may inflate far beyond its input: read a bounded prefix.
    let mut text = Vec::new();
    if reader.take(16 << 20).read_to_end(&mut text).is_ok() {
        let _ = parse_chunk(&text, ChunkPos::default());
    }
});
