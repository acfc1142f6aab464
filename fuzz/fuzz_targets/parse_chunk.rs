//! Any bytes through chunk parsing, typed-field promotion and Arrow batch building.
#![no_main]

use kreq_ingest::text::chunk::{parse_chunk, ChunkPos};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = parse_chunk(data, ChunkPos::default());
});
