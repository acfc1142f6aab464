//! The recorder's side of `kreq record`: pages collected from the per-CPU readers, decoded
//! and written as part files at each rotation, and the manifest kept up to date.

use std::path::PathBuf;

use hashbrown::HashMap;
use kreq_schemas::dataset::{self, Manifest, SourceSummary};
use kreq_schemas::SCHEMA_VERSION;

use super::instance::Instance;
use super::parts::write_part;
use super::reader::{BufferPool, Pages, ReaderStats};
use super::record::{RecordOptions, RecordReport};
use crate::binary::format::{FormatRegistry, PageHeader};
use crate::binary::merge::{CpuPages, DecodeContext, Decoder};
use crate::chunk::LostReport;
use crate::error::Result;
use crate::output::write_manifest;
use crate::sink::{lost_events_batch, write_table};

/// What a recording captures with: page layout, formats, CPUs, page buffers, own threads.
pub(super) struct Capture {
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

/// Pages collected from the readers, and what has been written from them so far.
pub(super) struct Recorder {
    opts: RecordOptions,
    root: PathBuf,
    /// Page layout, formats, CPUs, buffer pool; the recorder's own threads' events are left
    /// out when decoding.
    pub(super) capture: Capture,
    /// Per CPU, the page buffers read since the last flush (whole pages each).
    pending: Vec<Vec<Vec<u8>>>,
    pub(super) pending_bytes: usize,
    own_events: u64,
    seq: u64,
    summary: SourceSummary,
    pub(super) lost: Vec<LostReport>,
    range: Option<(i64, i64)>,
    sorted: bool,
    parquet_bytes: u64,
    meta: Vec<(String, String)>,
    manifest: Manifest,
}

impl Recorder {
    pub(super) fn new(
        opts: &RecordOptions,
        root: &std::path::Path,
        inst: &Instance,
        capture: Capture,
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
        Self {
            opts: opts.clone(),
            root: root.to_owned(),
            pending: vec![Vec::new(); capture.cpus.len()],
            capture,
            pending_bytes: 0,
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
    pub(super) fn add(&mut self, pages: Pages) {
        self.pending_bytes += pages.bytes;
        self.summary.bytes += pages.bytes as u64;
        let runs = &mut self.pending[pages.cpu_index];
        let c = &self.capture;
        c.pool.append(runs, &pages.data, c.page_size);
        c.pool.put(pages.data);
    }

    /// Decode the pages collected so far into new part files and refresh the manifest.
    pub(super) fn flush(&mut self) -> Result<()> {
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
        };
        let mut decoder = Decoder::new(&pages, &ctx);
        self.summary.malformed += decoder.bad_pages.len() as u64;
        while let Some(first) = decoder.next_chunk(crate::part::BATCH_ROWS) {
            let lost_before = self.lost.len();
            self.lost.extend(first.lost);
            if first.events.num_rows() > 0 {
                let path = dataset::part_path(
                    &self.opts.output,
                    kreq_schemas::table::EVENTS.name,
                    self.seq,
                );
                self.seq += 1;
                let target = (path.as_path(), self.opts.zstd_level, self.meta.as_slice());
                let part = write_part(&mut decoder, first.events, target, &mut self.lost)?;
                self.parquet_bytes += part.bytes;
                self.summary.events += part.rows;
                self.summary.parts.push(format!(
                    "{}/{}",
                    kreq_schemas::table::EVENTS.name,
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
                self.capture.pool.put(v);
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

    pub(super) fn finish(mut self) -> Result<RecordReport> {
        let name = self.summary.path.clone();
        let rows: Vec<(&str, LostReport)> = self
            .lost
            .iter()
            .map(|l| (name.as_str(), l.clone()))
            .collect();
        let batch = lost_events_batch(&rows)?;
        let path = dataset::part_path(&self.opts.output, kreq_schemas::table::LOST_EVENTS.name, 0);
        self.parquet_bytes += write_table(
            &path,
            kreq_schemas::table::LOST_EVENTS.name,
            &batch,
            self.opts.zstd_level,
            &self.meta,
        )?;
        if self.summary.events == 0 {
            let empty = arrow::record_batch::RecordBatch::new_empty(kreq_schemas::events::schema());
            let path = dataset::part_path(&self.opts.output, kreq_schemas::table::EVENTS.name, 0);
            self.parquet_bytes += write_table(
                &path,
                kreq_schemas::table::EVENTS.name,
                &empty,
                self.opts.zstd_level,
                &self.meta,
            )?;
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
