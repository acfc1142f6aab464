//! `kreq record`: capture from a private tracefs instance through the binary per-CPU buffers.
//!
//! One reader thread per CPU reads whole sub-buffers from `per_cpu/cpuN/trace_pipe_raw`,
//! woken by `poll(2)` when the CPU buffer is [`RecordOptions::wake_percent`] full (tracefs
//! `buffer_percent`) or after [`RecordOptions::max_wait`], so wakeups are batched and never per
//! event. The main thread collects pages and, every [`RecordOptions::rotate_bytes`] or
//! [`RecordOptions::rotate_every`], decodes and merges them by time into a new part file. The
//! recorder's own threads (and scheduler events naming them) are left out while decoding.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Barrier};
use std::time::{Duration, Instant};

use kreq_ingest::binary::format::PageHeader;
use kreq_ingest::binary::stats::lost_from_stats;
use kreq_ingest::dataset::DatasetWriter;

use crate::error::{Error, Result};
use crate::instance::{read_file, tracefs_root, Instance};
use crate::options::{RecordObserver, RecordOptions, RecordReport};
use crate::reader::{read_cpu, BufferPool, Pages, ReaderStats, Wake, BATCH_BYTES};
use crate::recorder::{Capture, Recorder};
use crate::setup::{configure, current_tid, lower_priority, online_cpus, write_formats};

/// Page-buffer memory taken and faulted in before tracing starts (at most one part's worth):
/// a page's first touch costs more than reading it, and would be paid while the workload runs.
const PREFAULT_BYTES: usize = 64 << 20;

/// Record until `stop` is set or the duration ends.
pub fn record(
    opts: &RecordOptions,
    stop: &AtomicBool,
    observer: &dyn RecordObserver,
) -> Result<RecordReport> {
    let root = tracefs_root()?;
    let writer = DatasetWriter::create(&opts.output, opts.force, opts.zstd_level)?;
    let inst = Instance::create(&root)?;
    let result = run(opts, &root, &inst, writer, stop, observer);
    let name = inst.name();
    let removed = inst.remove();
    let mut report = result?;
    removed?;
    report.instance = name;
    Ok(report)
}

fn run(
    opts: &RecordOptions,
    root: &std::path::Path,
    inst: &Instance,
    writer: DatasetWriter,
    stop: &AtomicBool,
    observer: &dyn RecordObserver,
) -> Result<RecordReport> {
    inst.write("tracing_on", "0")?;
    inst.write("trace_clock", &opts.clock)?;
    inst.write("buffer_size_kb", &opts.buffer_kb.to_string())?;
    inst.write("buffer_percent", &opts.wake_percent.min(100).to_string())?;
    // record-tgid fills saved_tgids so rows get their process id; not fatal if refused.
    let _ = inst.write("options/record-tgid", "1");
    let page_size = inst
        .read("buffer_subbuf_size_kb")
        .ok()
        .and_then(|s| s.trim().parse::<usize>().ok())
        .map_or(4096, |kb| kb * 1024);
    let header_path = root.join("events/header_page");
    let header_text = read_file(&header_path).map_err(|e| Error::io(&header_path, e))?;
    let header = PageHeader::parse(&header_text).map_err(|e| Error::Tracefs(e.to_string()))?;
    let cpus = online_cpus(inst)?;

    // Readers start now so their thread ids can be excluded before tracing begins.
    // Unbounded: readers must never wait on the (deprioritised) encoder, or the kernel buffer
    // would overflow while the workload keeps every CPU busy.
    let (page_tx, page_rx) = mpsc::channel::<Pages>();
    let (tid_tx, tid_rx) = mpsc::channel::<i32>();
    let go = Arc::new(Barrier::new(cpus.len() + 1));
    let wake = Wake::new(opts.max_wait)?;
    // Enough buffers for one part's pages (up to PREFAULT_BYTES), faulted in before tracing.
    // Readers hold up to two batches each while the recorder fills its own buffers.
    let buffers = opts.rotate_bytes.min(PREFAULT_BYTES) / BATCH_BYTES + 3 * cpus.len();
    let pool = BufferPool::prefilled(buffers, BATCH_BYTES + page_size);
    let mut handles = Vec::new();
    for (i, cpu) in cpus.iter().enumerate() {
        let path = inst.dir().join(format!("per_cpu/cpu{cpu}/trace_pipe_raw"));
        let (page_tx, tid_tx, go, wake, pool) = (
            page_tx.clone(),
            tid_tx.clone(),
            go.clone(),
            wake.clone(),
            pool.clone(),
        );
        handles.push(std::thread::spawn(move || {
            let _ = tid_tx.send(current_tid());
            drop(tid_tx);
            go.wait();
            read_cpu(&path, i, (page_size, header), &wake, &page_tx, &pool)
        }));
    }
    drop(page_tx);
    drop(tid_tx);
    let mut own: Vec<i32> = tid_rx.iter().collect();
    own.push(std::process::id() as i32);
    own.push(current_tid());
    own.sort_unstable();
    own.dedup();
    let setup = configure(inst, opts);
    let formats = match setup {
        Ok(f) => f,
        Err(e) => {
            wake.stop()?;
            go.wait();
            return Err(e);
        }
    };
    write_formats(&opts.output, inst, &formats)?;
    let capture = Capture {
        header,
        page_size,
        formats,
        cpus,
        pool,
        own,
    };
    let mut rec = Recorder::new(opts, root, inst, capture, writer);
    inst.write("tracing_on", "1")?;
    go.wait();
    observer.started(&inst.name());
    if opts.background_encode {
        lower_priority();
    }
    let started = Instant::now();
    let mut last_flush = Instant::now();
    loop {
        let done =
            stop.load(Ordering::SeqCst) || opts.duration.is_some_and(|d| started.elapsed() >= d);
        if done {
            break;
        }
        match page_rx.recv_timeout(Duration::from_millis(50)) {
            Ok(pages) => rec.add(pages),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        if rec.pending_bytes >= opts.rotate_bytes || last_flush.elapsed() >= opts.rotate_every {
            rec.flush()?;
            last_flush = Instant::now();
        }
    }
    // Stop, drain what the buffers still hold, then close the last part.
    inst.write("tracing_on", "0")?;
    wake.stop()?;
    for pages in page_rx.iter() {
        rec.add(pages);
    }
    let mut readers = ReaderStats::default();
    for h in handles {
        let s = h.join().map_err(|_| Error::WorkerPanicked)??;
        readers.wakeups += s.wakeups;
        readers.pages += s.pages;
        readers.spliced += s.spliced;
    }
    rec.flush()?;
    let stats: Vec<String> = rec
        .capture
        .cpus
        .iter()
        .map(|c| {
            inst.read(&format!("per_cpu/cpu{c}/stats"))
                .unwrap_or_default()
        })
        .collect();
    rec.add_lost(lost_from_stats(&stats));
    let mut report = rec.finish()?;
    report.readers = readers;
    Ok(report)
}
