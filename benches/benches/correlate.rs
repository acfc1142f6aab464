//! Correlation throughput: the streaming engine over the events of a real capture
//! (`testdata/s2-c4`, 47,896 events, 300 requests over 4 keep-alive connections), replicated
//! 8 times with shifted times (383k events, 2,400 requests), on one thread, in events/s.
//! Events are decoded from the dataset first; the bench times the linking pass (labels, spans,
//! requests, edges), not Parquet I/O.
//!
//! Run: `cargo bench -p kreq-benches --bench correlate`.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use kreq_correlate::{ingress, Config, Engine, Event, Tag};
use kreq_ingest::{ingest, IngestOptions, NoProgress};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `copies` copies of `events`, each shifted past the previous copy's end.
fn replicate(events: &[Event], copies: usize) -> Vec<Event> {
    let (first, last) = (events[0].ts, events[events.len() - 1].ts);
    let span = last - first + 1;
    let mut out = Vec::with_capacity(events.len() * copies);
    for k in 0..copies {
        for e in events {
            let mut e = *e;
            e.ts += span * k as i64;
            e.row = out.len() as u64;
            out.push(e);
        }
    }
    out
}

fn run(events: &[Event], cfg: &Config) -> usize {
    let mut engine = Engine::new(cfg.clone());
    let mut labels: Vec<(u64, Tag)> = Vec::with_capacity(events.len());
    let mut finished = 0;
    for e in events {
        engine.push(e, &mut labels);
    }
    engine.finish(&mut labels);
    finished += engine.take_finished().len();
    finished
}

fn bench(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("kreq-bench-correlate-{}", std::process::id()));
    let mut opts = IngestOptions::new(&dir);
    opts.force = true;
    let input = kreq_benches::testdata().join("s2-c4/trace.txt.zst");
    ingest(std::slice::from_ref(&input), &opts, &NoProgress).expect("ingest");
    let (events, mut names) = kreq_correlate::dataset::load_events(&dir).expect("load");
    let _ = std::fs::remove_dir_all(&dir);
    let events = replicate(&events, 8);
    let cfg = Config {
        ingress: vec![ingress::parse("127.0.0.1:18080", &mut names).expect("ingress")],
        ..Config::default()
    };
    let requests = run(&events, &cfg);
    eprintln!(
        "correlate bench: {} events, {requests} requests per iteration",
        events.len()
    );
    let mut g = c.benchmark_group("correlate_events");
    g.sample_size(20).measurement_time(Duration::from_secs(8));
    g.throughput(Throughput::Elements(events.len() as u64));
    g.bench_function("engine_1thread", |b| b.iter(|| run(&events, &cfg)));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
