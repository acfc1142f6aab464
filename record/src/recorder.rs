//! The recorder's side of `kreq record`: pages collected from the per-CPU readers, decoded
//! and written as part files at each rotation, and the manifest kept up to date.

use std::path::PathBuf;

use hashbrown::HashMap;
use kreq_ingest::binary::format::{FormatRegistry, PageHeader};
use kreq_ingest::binary::merge::{CpuPages, DecodeContext, Decoder};
use kreq_ingest::binary::printk::KernelStrings;
use kreq_ingest::dataset::{file_metadata, part_name, part_path, DatasetWriter};
use kreq_ingest::rows::LostReport;
use kreq_ingest::rows::BATCH_ROWS;
use kreq_schemas::dataset::SourceSummary;

use crate::error::Result;
use crate::instance::{read_file, Instance};
use crate::options::{RecordOptions, RecordReport};
use crate::parts::write_part;
use crate::reader::{epoch_offset_ns, BufferPool, Pages, ReaderStats};

/// What a recording captures with: page layout, formats, CPUs, page buffers, own threads.
pub(crate) struct Capture {
    /// Page layout (`events/header_page`).
    pub header: PageHeader,
    /// Sub-buffer size.
    pub page_size: usize,
    /// Formats of the enabled events.
    pub formats: FormatRegistry,
    /// CPUs read, in reader order.
    pub cpus: Vec<u16>,
    /// Page buffers shared with the readers.
    pub pool: BufferPool,
    /// The recorder's own threads, sorted.
    pub own: Vec<i32>,
}

/// Pages collected from the readers, and the dataset written from them so far.
pub(crate) struct Recorder {
    root: PathBuf,
    /// Page layout, formats, CPUs, buffer pool; the recorder's own threads' events are left
    /// out when decoding.
    pub(crate) capture: Capture,
    /// Per CPU, the page buffers read since the last flush (whole pages each).
    pending: Vec<Vec<Vec<u8>>>,
    pub(crate) pending_bytes: usize,
    own_events: u64,
    seq: u64,
    summary: SourceSummary,
    meta: Vec<(String, String)>,
    writer: DatasetWriter,
    /// `trace_printk` formats and kernel symbols, read when the profile has `ftrace` events
    /// (`print`, `bprint`, `bputs`), so their rows read as in a trace.dat.
    strings: Option<KernelStrings>,
    /// [`RecordOptions::test_shift_ns`].
    ts_shift_ns: i64,
}

impl Recorder {
    pub(crate) fn new(
        opts: &RecordOptions,
        root: &std::path::Path,
        inst: &Instance,
        capture: Capture,
        mut writer: DatasetWriter,
    ) -> Self {
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .ok()
            .map(|s| s.trim().to_owned());
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|s| s.trim().to_owned());
        let boot_id =
            std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default();
        let source = format!("tracefs:{}", inst.name());
        let mut meta = file_metadata(&source, &opts.clock, kernel.as_deref(), host.as_deref());
        meta.insert(2, ("kreq.boot_id".to_owned(), boot_id.trim().to_owned()));
        let m = writer.manifest_mut();
        m.trace_clock = opts.clock.clone();
        m.kernel = kernel;
        m.host = host;
        m.boot_id = Some(boot_id.trim().to_owned()).filter(|b| !b.is_empty());
        m.epoch_offset_ns = epoch_offset_ns(&opts.clock);
        let strings = opts
            .events
            .iter()
            .any(|e| e.group == "ftrace")
            .then(|| kernel_strings(root));
        Self {
            root: root.to_owned(),
            pending: vec![Vec::new(); capture.cpus.len()],
            capture,
            pending_bytes: 0,
            own_events: 0,
            seq: 0,
            summary: SourceSummary {
                path: source,
                format: "trace_pipe_raw".into(),
                clock: Some(opts.clock.clone()),
                ..Default::default()
            },
            meta,
            writer,
            strings,
            ts_shift_ns: opts.test_shift_ns,
        }
    }

    /// Keep a reader's batch of pages (already padded to whole sub-buffers) for the next part.
    /// They are copied into the CPU's pending buffers and the batch's buffer goes back to the
    /// pool: batches cut short by a drain would otherwise each pin a whole buffer. A copy
    /// costs far less than fresh memory.
    pub(crate) fn add(&mut self, pages: Pages) {
        self.pending_bytes += pages.bytes;
        self.summary.bytes += pages.bytes as u64;
        let runs = &mut self.pending[pages.cpu_index];
        let c = &self.capture;
        c.pool.append(runs, &pages.data, c.page_size);
        c.pool.put(pages.data);
    }

    /// Lost-event counts of the CPUs' stats, read at the end (the source's `lost_reports`
    /// counts the reports found in its pages).
    pub(crate) fn add_lost(&mut self, lost: Vec<LostReport>) {
        self.writer.add_lost(&self.summary.path, lost);
    }

    /// Decode the pages collected so far into new part files and refresh the manifest.
    pub(crate) fn flush(&mut self) -> Result<()> {
        if self.pending_bytes == 0 {
            return Ok(());
        }
        let cmdlines = read_pairs(&self.root.join("saved_cmdlines"), |a, b| {
            Some((a.parse().ok()?, b.to_owned()))
        });
        let tgids = read_pairs(&self.root.join("saved_tgids"), |a, b| {
            Some((a.parse().ok()?, b.parse().ok()?))
        });
        let c = &self.capture;
        let pages: Vec<CpuPages<'_>> = c
            .cpus
            .iter()
            .zip(&self.pending)
            .map(|(&cpu, p)| CpuPages {
                cpu,
                runs: p.iter().map(Vec::as_slice).collect(),
            })
            .collect();
        let ctx = DecodeContext {
            page_header: c.header,
            page_size: c.page_size,
            formats: &c.formats,
            cmdlines: &cmdlines,
            tgids: &tgids,
            exclude: &c.own,
            strings: self.strings.as_ref(),
            long_size: std::mem::size_of::<libc::c_long>(),
            ts_shift_ns: self.ts_shift_ns,
        };
        let mut decoder = Decoder::new(&pages, &ctx);
        self.summary.malformed += decoder.bad_pages.len() as u64;
        let mut lost = Vec::new();
        while let Some(first) = decoder.next_chunk(BATCH_ROWS) {
            lost.extend(first.lost);
            if first.events.num_rows() > 0 {
                let path = part_path(self.writer.dir(), self.seq);
                self.seq += 1;
                let to = (
                    path.as_path(),
                    self.writer.zstd_level(),
                    self.meta.as_slice(),
                );
                let part = write_part(&mut decoder, first.events, to, &mut lost)?;
                self.writer.add_part(&part);
                self.summary.events += part.rows;
                self.summary.parts.push(part_name(&path));
            }
        }
        self.own_events += decoder.excluded;
        drop(decoder);
        self.summary.lost_reports += lost.len() as u64;
        self.add_lost(lost);
        for runs in &mut self.pending {
            for v in runs.drain(..) {
                self.capture.pool.put(v);
            }
        }
        self.pending_bytes = 0;
        self.writer.manifest_mut().sources = vec![self.summary.clone()];
        self.writer.write_manifest()?;
        Ok(())
    }

    /// Close the dataset: the `lost_events` table and the final manifest.
    pub(crate) fn finish(mut self) -> Result<RecordReport> {
        self.writer.manifest_mut().sources = vec![self.summary.clone()];
        let done = self.writer.finish(&self.meta)?;
        Ok(RecordReport {
            manifest: done.manifest,
            instance: String::new(),
            lost: done.lost,
            parquet_bytes: done.parquet_bytes,
            readers: ReaderStats::default(),
            own_events: self.own_events,
        })
    }
}

/// The kernel's `trace_printk` formats (tracefs `printk_formats`) and symbols
/// (`/proc/kallsyms`, which shows addresses to root). Either may be unreadable: rows then keep
/// what it would have named raw.
fn kernel_strings(root: &std::path::Path) -> KernelStrings {
    let mut k = KernelStrings::default();
    if let Ok(text) = read_file(&root.join("printk_formats")) {
        k.add_printk(&text);
    }
    if let Ok(text) = std::fs::read_to_string("/proc/kallsyms") {
        k.add_kallsyms(&text);
    }
    k
}

/// `A B` lines of saved_cmdlines / saved_tgids.
fn read_pairs<K: std::hash::Hash + Eq, V>(
    path: &std::path::Path,
    f: impl Fn(&str, &str) -> Option<(K, V)>,
) -> HashMap<K, V> {
    read_file(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once(' ').and_then(|(a, b)| f(a.trim(), b.trim())))
        .collect()
}
