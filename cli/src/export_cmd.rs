//! `kreq export`: Perfetto (Chrome trace JSON) and OTLP JSON files of selected requests.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use kreq_query::export::{self, otlp, perfetto, Progress, Selection};
use kreq_schemas::dataset::Manifest;

/// Export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// Chrome trace-event JSON: open in ui.perfetto.dev or chrome://tracing.
    Perfetto,
    /// OTLP JSON (resourceSpans), for Jaeger, Tempo or any OTLP backend.
    Otlp,
}

/// Arguments of `kreq export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// A correlated dataset (`kreq correlate` has run), or a correlated warehouse with
    /// `--host` (and `--date` when the host has several days).
    pub dataset: PathBuf,
    /// In a warehouse, the host whose requests to export (one recording: its own clock and
    /// trace-id salt).
    #[arg(long)]
    pub host: Option<String>,
    /// In a warehouse, the day (YYYY-MM-DD).
    #[arg(long)]
    pub date: Option<String>,
    /// Output format.
    #[arg(short, long, value_enum)]
    pub format: ExportFormat,
    /// File to write (`-` for stdout).
    #[arg(short, long)]
    pub output: PathBuf,
    /// Export this request (repeatable); combines with the other selections.
    #[arg(long = "request")]
    pub requests: Vec<u64>,
    /// Export the N slowest requests (within --from/--to when given).
    #[arg(long)]
    pub slowest: Option<usize>,
    /// Only requests starting at or after this trace-clock time (ns).
    #[arg(long)]
    pub from: Option<i64>,
    /// Only requests starting before this trace-clock time (ns).
    #[arg(long)]
    pub to: Option<i64>,
    /// OTLP: ns to add to trace-clock times to get Unix time (default: the offset `kreq
    /// record` measured; 0 when the dataset has none, e.g. text captures).
    #[arg(long)]
    pub epoch_offset_ns: Option<i64>,
    /// Print nothing but errors.
    #[arg(short, long)]
    pub quiet: bool,
}

/// A progress bar on a terminal, nothing otherwise.
struct Bar(Option<indicatif::ProgressBar>);

impl Bar {
    fn new(quiet: bool, total: u64) -> Self {
        if quiet || !std::io::stderr().is_terminal() || total < 20_000 {
            return Self(None);
        }
        let b = indicatif::ProgressBar::new(total);
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{spinner} writing spans {bar:40} {pos}/{len} ({eta})",
        ) {
            b.set_style(style);
        }
        Self(Some(b))
    }
}

impl Progress for Bar {
    fn step(&self, done: u64, _total: u64) {
        if let Some(b) = &self.0 {
            b.set_position(done);
        }
    }
}

/// Runs `kreq export`.
pub fn run(args: ExportArgs) -> Result<()> {
    if !kreq_schemas::warehouse::is_warehouse(&args.dataset) {
        if args.host.is_some() || args.date.is_some() {
            bail!(
                "--host and --date select a batch of a warehouse; {} is a dataset",
                args.dataset.display()
            );
        }
        return export(&args.dataset, &args);
    }
    // A warehouse: one batch (one host's recording, with its own clock and trace-id salt),
    // read as the dataset it was.
    let wh = kreq_warehouse::Warehouse::open(&args.dataset)?;
    let batches = wh.batches_of(args.host.as_deref(), args.date.as_deref())?;
    let [batch] = batches.as_slice() else {
        let found: Vec<String> = batches
            .iter()
            .map(|b| format!("host={} date={}", b.host, b.date))
            .collect();
        bail!(
            "{}: a warehouse; kreq export reads one host's recording, and {} batches match{}: \
             choose one with --host and --date",
            args.dataset.display(),
            batches.len(),
            if found.is_empty() {
                String::new()
            } else {
                format!(" ({})", found.join(", "))
            }
        );
    };
    let staged = wh.dataset_of(batch)?;
    export(staged.dir(), &args)
}

/// Exports from the dataset at `dir` (`args.dataset` itself, or one batch of it).
fn export(dir: &Path, args: &ExportArgs) -> Result<()> {
    let manifest = Manifest::read(dir)
        .with_context(|| format!("{}: not a kreq dataset", args.dataset.display()))?;
    if manifest.correlation.is_none() {
        bail!(
            "{}: no correlation results; run `kreq correlate {}` first",
            args.dataset.display(),
            args.dataset.display()
        );
    }
    let window = match (args.from, args.to) {
        (None, None) => None,
        (f, t) => Some((f.unwrap_or(i64::MIN), t.unwrap_or(i64::MAX))),
    };
    let sel = Selection {
        requests: args.requests.clone(),
        slowest: args.slowest,
        window,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let selected = rt.block_on(async {
        let (ctx, _) = kreq_query::open(dir).await?;
        export::load(&ctx, &sel).await
    })?;
    for id in &args.requests {
        if !selected.requests.iter().any(|r| r.id == *id) {
            bail!("{}: no request {id}", args.dataset.display());
        }
    }
    if selected.requests.is_empty() {
        bail!(
            "{}: no request matches the selection",
            args.dataset.display()
        );
    }
    let bar = Bar::new(args.quiet, selected.spans.len() as u64);
    let summary = crate::outfile::with_output(&args.output, |out| match args.format {
        ExportFormat::Perfetto => {
            let w = perfetto::write(&selected, out, &bar)?;
            Ok(format!(
                "{} slices, {} flow arrows, {} thread tracks",
                w.slices, w.flows, w.tracks
            ))
        }
        ExportFormat::Otlp => {
            let offset = args.epoch_offset_ns.or(manifest.epoch_offset_ns);
            let opts = otlp::Options {
                epoch_offset_ns: offset.unwrap_or(0),
                salt: salt(&manifest),
            };
            let w = otlp::write(&selected, opts, out, &bar)?;
            Ok(format!(
                "{} traces, {} spans, {} resources{}",
                w.traces,
                w.spans,
                w.resources,
                if offset.is_none() {
                    "; times are trace-clock ns (no wall-clock offset known; see --epoch-offset-ns)"
                } else {
                    ""
                }
            ))
        }
    })?;
    if let Some(b) = bar.0 {
        b.finish_and_clear();
    }
    if !args.quiet && args.output != Path::new("-") {
        let size = std::fs::metadata(&args.output).map_or(0, |m| m.len());
        eprintln!(
            "exported {} requests to {} ({:.1} KB): {summary}",
            selected.requests.len(),
            args.output.display(),
            size as f64 / 1e3
        );
    }
    Ok(())
}

/// Trace-id salt: a hash of what identifies the recording (boot, host, time range).
fn salt(m: &Manifest) -> u64 {
    let key = format!(
        "{:?}{:?}{:?}{:?}",
        m.boot_id,
        m.host,
        m.time_range_ns,
        m.sources.first().map(|s| &s.path)
    );
    // FNV-1a: stable across runs and versions.
    key.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}
