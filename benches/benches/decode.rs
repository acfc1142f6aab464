//! Binary decode throughput: ring-buffer pages of a real recording (`testdata/t0-tracecmd/
//! trace.dat`, 12,595 events on 2 CPUs) -> merged, time-ordered Arrow `events` batches, on one
//! thread, in events/s and bytes/s of raw pages.
//!
//! Run: `cargo bench -p kreq-benches --bench decode`.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use kreq_ingest::tracedat;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn bench(c: &mut Criterion) {
    let file =
        std::fs::read(kreq_benches::testdata().join("t0-tracecmd/trace.dat")).expect("trace.dat");
    let dat = tracedat::parse(&file, None).expect("parse");
    let events: usize = dat
        .decode(1 << 20)
        .chunks
        .iter()
        .map(|c| c.events.num_rows())
        .sum();
    let bytes: u64 = dat.cpus.iter().map(|c| c.size).sum();
    for (unit, tp) in [
        ("events", Throughput::Elements(events as u64)),
        ("bytes", Throughput::Bytes(bytes)),
    ] {
        let mut g = c.benchmark_group(format!("decode_{unit}"));
        g.sample_size(30).measurement_time(Duration::from_secs(5));
        g.throughput(tp);
        g.bench_function("pages_to_arrow_1thread", |b| b.iter(|| dat.decode(1 << 20)));
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
