//! `kreq record`: capture from a private tracefs instance through the binary per-CPU buffers.
//!
//! One reader thread per CPU reads whole sub-buffers from `per_cpu/cpuN/trace_pipe_raw`,
//! woken by `poll(2)` when the CPU buffer is [`RecordOptions::wake_percent`] full (tracefs
//! `buffer_percent`) or after [`RecordOptions::max_wait`], so wakeups are batched and never per
//! event. The main thread collects pages and, every [`RecordOptions::rotate_bytes`] or
//! [`RecordOptions::rotate_every`], decodes and merges them by time into a new part file. The
//! recorder's own threads (and scheduler events naming them) are left out while decoding.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Barrier};
use std::time::{Duration, Instant};

use hashbrown::HashMap;
use kreq_schemas::dataset::{self, Manifest, SourceSummary};
use kreq_schemas::SCHEMA_VERSION;

use super::instance::{tracefs_root, Instance};
use super::parts::write_part;
use super::profile::EventSpec;
use super::reader::{read_cpu, BufferPool, Pages, ReaderStats, Wake, BATCH_BYTES};

/// Page-buffer memory taken and faulted in before tracing starts (at most one part's worth):
/// a page's first touch costs more than reading it, and would be paid while the workload runs.
const PREFAULT_BYTES: usize = 64 << 20;
use super::setup::{configure, current_tid, lower_priority, online_cpus, write_formats};
use crate::binary::format::{FormatRegistry, PageHeader};
use crate::binary::merge::{CpuPages, DecodeContext, Decoder};
use crate::binary::stats::lost_from_stats;
use crate::chunk::LostReport;
use crate::error::{Error, Result};
use crate::output::{prepare_output, write_manifest};
use crate::sink::{lost_events_batch, write_table};

/// Settings of a recording.
#[derive(Debug, Clone)]
pub struct RecordOptions {
    /// Dataset directory to create.
    pub output: PathBuf,
    /// Events to enable, with optional filters.
    pub events: Vec<EventSpec>,
    /// Trace clock (`mono` by default, so applications can log comparable times).
    pub clock: String,
    /// Per-CPU buffer size in KiB.
    pub buffer_kb: u32,
    /// Stop after this long (otherwise when the stop flag is set).
    pub duration: Option<Duration>,
    /// Only record these processes: their threads and descendant processes at start (see
    /// [`super::scope`]) and what they fork later; empty (and no cgroups) records everything.
    pub pids: Vec<i32>,
    /// Only record the processes of these cgroup directories (their threads and descendants
    /// at start, and what those fork later).
    pub cgroups: Vec<PathBuf>,
    /// Start a new part file after this many bytes of raw pages...
    pub rotate_bytes: usize,
    /// ... or after this long, whichever comes first.
    pub rotate_every: Duration,
    /// Wake a reader when its CPU buffer is this full (tracefs `buffer_percent`, 0-100).
    pub wake_percent: u8,
    /// Longest pages may sit in the kernel buffer below that mark before being read.
    pub max_wait: Duration,
    /// zstd level of the Parquet files.
    pub zstd_level: i32,
    /// Decode and write Parquet at the lowest CPU priority (nice 19), so the traced workload
    /// keeps the CPUs; pages wait in memory when there is no spare CPU.
    pub background_encode: bool,
    /// Replace an existing dataset.
    pub force: bool,
}

impl RecordOptions {
    /// Defaults: the correlation profile, `mono`, 8 MiB per CPU, 64 MiB / 10 s parts.
    pub fn new(output: impl Into<PathBuf>) -> Self {
        Self {
            output: output.into(),
            events: super::profile::default_profile(),
            clock: "mono".into(),
            buffer_kb: 8192,
            duration: None,
            pids: Vec::new(),
            cgroups: Vec::new(),
            rotate_bytes: 64 << 20,
            rotate_every: Duration::from_secs(10),
            wake_percent: 25,
            max_wait: Duration::from_secs(1),
            zstd_level: kreq_schemas::writer::DEFAULT_ZSTD_LEVEL,
            background_encode: true,
            force: false,
        }
    }
}

/// What a recording did.
#[derive(Debug)]
pub struct RecordReport {
    /// The manifest written.
    pub manifest: Manifest,
    /// The tracefs instance used (already removed).
    pub instance: String,
    /// Lost-event reports (page flags and per-CPU stats).
    pub lost: Vec<LostReport>,
    /// Bytes of Parquet written.
    pub parquet_bytes: u64,
    /// What the per-CPU readers did (wakeups, pages), summed over CPUs.
    pub readers: ReaderStats,
    /// Events of the recorder's own threads (and scheduler events naming them) left out.
    pub own_events: u64,
}

struct Recorder {
    opts: RecordOptions,
    root: PathBuf,
    header: PageHeader,
    page_size: usize,
    formats: FormatRegistry,
    cpus: Vec<u16>,
    /// Per CPU, the page buffers read since the last flush (whole pages each).
    pending: Vec<Vec<Vec<u8>>>,
    pending_bytes: usize,
    pool: BufferPool,
    /// The recorder's own threads, sorted: their events are left out when decoding.
    own: Vec<i32>,
    own_events: u64,
    seq: u64,
    summary: SourceSummary,
    lost: Vec<LostReport>,
    range: Option<(i64, i64)>,
    sorted: bool,
    parquet_bytes: u64,
    meta: Vec<(String, String)>,
    manifest: Manifest,
}

/// Told when tracing has started (the instance is configured and `tracing_on` is 1).
pub trait RecordObserver: Sync {
    /// Tracing started in instance `name`.
    fn started(&self, name: &str);
}

/// An observer that ignores everything.
#[derive(Debug)]
pub struct Silent;

impl RecordObserver for Silent {
    fn started(&self, _name: &str) {}
}

/// Record until `stop` is set or the duration ends.
pub fn record(
    opts: &RecordOptions,
    stop: &AtomicBool,
    observer: &dyn RecordObserver,
) -> Result<RecordReport> {
    let root = tracefs_root()?;
    prepare_output(&opts.output, opts.force)?;
    let inst = Instance::create(&root)?;
    let result = run(opts, &root, &inst, stop, observer);
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
    let header_text =
        super::instance::read_file(&header_path).map_err(|e| Error::io(&header_path, e))?;
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
    let mut rec = Recorder::new(opts, root, header, page_size, formats, cpus.clone(), inst);
    (rec.pool, rec.own) = (pool, own);
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
    }
    rec.flush()?;
    let stats: Vec<String> = rec
        .cpus
        .iter()
        .map(|c| {
            inst.read(&format!("per_cpu/cpu{c}/stats"))
                .unwrap_or_default()
        })
        .collect();
    rec.lost.extend(lost_from_stats(&stats));
    let mut report = rec.finish()?;
    report.readers = readers;
    Ok(report)
}

impl Recorder {
    fn new(
        opts: &RecordOptions,
        root: &std::path::Path,
        header: PageHeader,
        page_size: usize,
        formats: FormatRegistry,
        cpus: Vec<u16>,
        inst: &Instance,
    ) -> Self {
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .ok()
            .map(|s| s.trim().to_owned());
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|s| s.trim().to_owned());
        let boot_id =
            std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default();
        let mut meta = vec![
            (
                dataset::SOURCE_KEY.to_owned(),
                format!("tracefs:{}", inst.name()),
            ),
            (dataset::CLOCK_KEY.to_owned(), opts.clock.clone()),
            ("kreq.boot_id".to_owned(), boot_id.trim().to_owned()),
        ];
        meta.extend(kernel.clone().map(|k| (dataset::KERNEL_KEY.to_owned(), k)));
        meta.extend(host.clone().map(|h| (dataset::HOST_KEY.to_owned(), h)));
        let n = cpus.len();
        Self {
            opts: opts.clone(),
            root: root.to_owned(),
            header,
            page_size,
            formats,
            cpus,
            pending: vec![Vec::new(); n],
            pending_bytes: 0,
            pool: BufferPool::default(),
            own: Vec::new(),
            own_events: 0,
            seq: 0,
            summary: SourceSummary {
                path: format!("tracefs:{}", inst.name()),
                format: "trace_pipe_raw".into(),
                clock: Some(opts.clock.clone()),
                ..Default::default()
            },
            lost: Vec::new(),
            range: None,
            sorted: true,
            parquet_bytes: 0,
            meta,
            manifest: Manifest {
                schema_version: SCHEMA_VERSION.into(),
                created_by: concat!("kreq ", env!("CARGO_PKG_VERSION")).into(),
                trace_clock: opts.clock.clone(),
                kernel,
                host,
                boot_id: Some(boot_id.trim().to_owned()).filter(|b| !b.is_empty()),
                epoch_offset_ns: super::reader::epoch_offset_ns(&opts.clock),
                ..Default::default()
            },
        }
    }

    /// Keep a reader's batch of pages (already padded to whole sub-buffers) for the next part.
    /// They are copied into the CPU's pending buffers and the batch's buffer goes back to the
    /// pool: batches cut short by a drain would otherwise each pin a whole buffer. A copy
    /// costs far less than fresh memory.
    fn add(&mut self, pages: Pages) {
        self.pending_bytes += pages.bytes;
        self.summary.bytes += pages.bytes as u64;
        let runs = &mut self.pending[pages.cpu_index];
        self.pool.append(runs, &pages.data, self.page_size);
        self.pool.put(pages.data);
    }

    /// Decode the pages collected so far into new part files and refresh the manifest.
    fn flush(&mut self) -> Result<()> {
        if self.pending_bytes == 0 {
            return Ok(());
        }
        let cmdlines = read_pairs(&self.root.join("saved_cmdlines"), |a, b| {
            Some((a.parse().ok()?, b.to_owned()))
        });
        let tgids = read_pairs(&self.root.join("saved_tgids"), |a, b| {
            Some((a.parse().ok()?, b.parse().ok()?))
        });
        let pages: Vec<CpuPages<'_>> = self
            .cpus
            .iter()
            .zip(&self.pending)
            .map(|(&cpu, p)| CpuPages {
                cpu,
                runs: p.iter().map(Vec::as_slice).collect(),
            })
            .collect();
        let ctx = DecodeContext {
            page_header: self.header,
            page_size: self.page_size,
            formats: &self.formats,
            cmdlines: &cmdlines,
            tgids: &tgids,
            exclude: &self.own,
        };
        let mut decoder = Decoder::new(&pages, &ctx);
        self.summary.malformed += decoder.bad_pages.len() as u64;
        while let Some(first) = decoder.next_chunk(crate::part::BATCH_ROWS) {
            let lost_before = self.lost.len();
            self.lost.extend(first.lost);
            if first.events.num_rows() > 0 {
                let path = dataset::part_path(&self.opts.output, dataset::EVENTS_DIR, self.seq);
                self.seq += 1;
                let target = (path.as_path(), self.opts.zstd_level, self.meta.as_slice());
                let part = write_part(&mut decoder, first.events, target, &mut self.lost)?;
                self.parquet_bytes += part.bytes;
                self.summary.events += part.rows;
                self.summary.parts.push(format!(
                    "{}/{}",
                    dataset::EVENTS_DIR,
                    crate::output::file_name(&path)
                ));
                if let Some((lo, hi)) = part.time_range {
                    self.sorted &= self.range.is_none_or(|(_, h)| h <= lo);
                    self.range = Some(self.range.map_or((lo, hi), |(a, b)| (a.min(lo), b.max(hi))));
                }
            }
            self.summary.lost_reports += (self.lost.len() - lost_before) as u64;
        }
        self.own_events += decoder.excluded;
        for runs in &mut self.pending {
            for v in runs.drain(..) {
                self.pool.put(v);
            }
        }
        self.pending_bytes = 0;
        self.write_manifest()
    }

    fn write_manifest(&mut self) -> Result<()> {
        self.manifest.sources = vec![self.summary.clone()];
        self.manifest.events = self.summary.events;
        self.manifest.lost_events = self.lost.iter().filter_map(|l| l.count).sum();
        self.manifest.time_range_ns = self.range;
        self.manifest.sorted = self.sorted;
        write_manifest(&self.opts.output, &self.manifest)
    }

    fn finish(mut self) -> Result<RecordReport> {
        let name = self.summary.path.clone();
        let rows: Vec<(&str, LostReport)> = self
            .lost
            .iter()
            .map(|l| (name.as_str(), l.clone()))
            .collect();
        let batch = lost_events_batch(&rows)?;
        let path = dataset::part_path(&self.opts.output, dataset::LOST_EVENTS_DIR, 0);
        self.parquet_bytes += write_table(
            &path,
            "lost_events",
            &batch,
            self.opts.zstd_level,
            &self.meta,
        )?;
        if self.summary.events == 0 {
            let empty = arrow::record_batch::RecordBatch::new_empty(kreq_schemas::events::schema());
            let path = dataset::part_path(&self.opts.output, dataset::EVENTS_DIR, 0);
            self.parquet_bytes +=
                write_table(&path, "events", &empty, self.opts.zstd_level, &self.meta)?;
        }
        self.write_manifest()?;
        Ok(RecordReport {
            manifest: self.manifest,
            instance: String::new(),
            lost: self.lost,
            parquet_bytes: self.parquet_bytes,
            readers: ReaderStats::default(),
            own_events: self.own_events,
        })
    }
}

/// `A B` lines of saved_cmdlines / saved_tgids.
fn read_pairs<K: std::hash::Hash + Eq, V>(
    path: &std::path::Path,
    f: impl Fn(&str, &str) -> Option<(K, V)>,
) -> HashMap<K, V> {
    super::instance::read_file(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once(' ').and_then(|(a, b)| f(a.trim(), b.trim())))
        .collect()
}
