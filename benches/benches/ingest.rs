//! Ingest throughput on a real capture: text -> Arrow (parse only), Arrow -> zstd Parquet
//! (encoding only, the parsed batches written to memory with kreq's writer properties) and
//! text -> zstd Parquet (the whole `kreq ingest` pipeline) with 1 and 2 threads, in events/s
//! and bytes/s. Prints the text:Parquet size ratio and bytes per event once.
//!
//! Input: `testdata/s2-c4` replicated 8 times with shifted times (about 57 MB, 383k events).
//! Run: `cargo bench -p kreq-benches --bench ingest`.

use std::path::PathBuf;
use std::time::Duration;

use arrow::record_batch::RecordBatch;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use kreq_ingest::rows::BATCH_ROWS;
use kreq_ingest::text::blocks::{Blocks, InMemory};
use kreq_ingest::text::chunk::{parse_chunk, ChunkParser, ChunkPos};
use kreq_ingest::{ingest, IngestOptions, NoProgress};
use kreq_schemas::{events, writer};
use parquet::arrow::ArrowWriter;

/// Same allocator as the kreq binary.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const COPIES: usize = 8;
const CHUNK: usize = 16 << 20;

fn input() -> (PathBuf, Vec<u8>, u64) {
    let text = kreq_benches::capture_text("s2-c4").expect("testdata/s2-c4/trace.txt.zst");
    let dir = std::env::temp_dir().join("kreq-bench");
    std::fs::create_dir_all(&dir).expect("temp dir");
    // Size on disk is measured on the real capture alone: replicated copies would let zstd
    // find repeats across copies and flatter the ratio.
    let real = dir.join("s2-c4.txt");
    std::fs::write(&real, &text).expect("write input");
    let parquet = run_ingest(&real, 1);
    let events = parse_chunk(&text, ChunkPos::default())
        .expect("parse")
        .events
        .num_rows();
    eprintln!(
        "size on disk (s2-c4, {events} events, {} bytes of text): {parquet} bytes of parquet, {:.2} bytes/event, text:parquet {:.1}x",
        text.len(),
        parquet as f64 / events as f64,
        text.len() as f64 / parquet as f64
    );
    let big = kreq_benches::replicate_shifted(&text, COPIES);
    let path = dir.join("s2-c4-x8.txt");
    std::fs::write(&path, &big).expect("write input");
    let events = parse_chunk(&big, ChunkPos::default())
        .expect("parse")
        .events
        .num_rows() as u64;
    (path, big, events)
}

fn run_ingest(path: &PathBuf, threads: usize) -> u64 {
    let out = std::env::temp_dir().join(format!("kreq-bench/out-{threads}"));
    let mut opts = IngestOptions::new(&out);
    opts.threads = threads;
    opts.chunk_bytes = CHUNK;
    opts.force = true;
    let report = ingest(std::slice::from_ref(path), &opts, &NoProgress).expect("ingest");
    report.parquet_bytes
}

/// `text` parsed into batches of [`BATCH_ROWS`] rows, as `kreq ingest` hands them to the
/// writer.
fn batches(text: &[u8]) -> Vec<RecordBatch> {
    let mut parser = ChunkParser::new(1);
    let mut out = Vec::new();
    let mut blocks = InMemory::new(text, 0);
    while let Some((block, offset)) = blocks.next_block(&mut Vec::new()).expect("block") {
        parser.parse(block, offset);
        if parser.rows() >= BATCH_ROWS {
            out.extend(parser.take_batch().expect("batch"));
        }
    }
    out.extend(parser.take_batch().expect("batch"));
    out
}

/// Encode `batches` as one Parquet file in memory; returns its size.
fn encode(batches: &[RecordBatch]) -> usize {
    let props = writer::properties(
        kreq_schemas::table::EVENTS.name,
        writer::DEFAULT_ZSTD_LEVEL,
        &[],
    );
    let mut out = Vec::with_capacity(64 << 20);
    let mut w = ArrowWriter::try_new(&mut out, events::schema(), Some(props)).expect("writer");
    for b in batches {
        w.write(b).expect("write");
    }
    w.close().expect("close");
    out.len()
}

fn bench(c: &mut Criterion) {
    let (path, text, events) = input();
    let parsed = batches(&text);
    let rows: usize = parsed.iter().map(|b| b.num_rows()).sum();
    assert_eq!(rows as u64, events, "batches hold every event");
    eprintln!("throughput input: {} bytes, {events} events", text.len());
    for (unit, tp) in [
        ("events", Throughput::Elements(events)),
        ("bytes", Throughput::Bytes(text.len() as u64)),
    ] {
        let mut g = c.benchmark_group(format!("ingest_{unit}"));
        g.sample_size(10).measurement_time(Duration::from_secs(8));
        g.throughput(tp);
        g.bench_function("text_to_arrow_1thread", |b| {
            b.iter(|| parse_chunk(&text, ChunkPos::default()).expect("parse"))
        });
        g.bench_function("arrow_to_parquet_1thread", |b| b.iter(|| encode(&parsed)));
        for threads in [1, 2] {
            g.bench_with_input(
                BenchmarkId::new("text_to_parquet", format!("{threads}thread")),
                &threads,
                |b, &t| b.iter(|| run_ingest(&path, t)),
            );
        }
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
