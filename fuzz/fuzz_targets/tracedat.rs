//! Any bytes as a trace.dat: header, options and sections (v6 and v7, zstd and zlib), then the
//! two-pass page decoder merging every CPU into Arrow batches.
#![no_main]

use kreq_ingest::tracedat;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(dat) = tracedat::parse(data, None) else {
        return;
    };
    dat.decode_with(|d| {
        let _ = d.source_errors();
        while d.next_chunk(4096).is_some() {}
    });
});
