//! `kreq ingest`.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use kreq_ingest::{IngestOptions, Progress};
use kreq_warehouse::{Staging, Warehouse};

/// Arguments of `kreq ingest`.
#[derive(Debug, Args)]
pub struct IngestArgs {
    /// Input files: ftrace text, `.zst`/`.gz` compressed text, or `-` for stdin.
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// Dataset directory to write.
    #[arg(
        short,
        long,
        required_unless_present = "warehouse",
        conflicts_with = "warehouse"
    )]
    output: Option<PathBuf>,
    /// Append to a warehouse instead (made when missing): the events go to
    /// `TABLE/host=H/date=D/` as one batch named by the inputs' contents, visible whole once
    /// complete; ingesting the same inputs again replaces that batch.
    #[arg(long, value_name = "DIR")]
    warehouse: Option<PathBuf>,
    /// Date partition (YYYY-MM-DD) of a warehouse batch (default: the UTC date of the first
    /// event when the recording knows wall-clock time, else of the first input's mtime).
    #[arg(long, requires = "warehouse")]
    date: Option<String>,
    /// Fail on the first malformed line (default: count, show a few, skip).
    #[arg(long)]
    strict: bool,
    /// Worker threads (default: all cores).
    #[arg(short = 'j', long)]
    threads: Option<usize>,
    /// Largest chunk in MiB; each chunk becomes one Parquet part file. An uncompressed file
    /// smaller than threads x this is cut into a chunk per thread (at least 8 MiB each).
    #[arg(long, default_value_t = 64)]
    chunk_mib: usize,
    /// zstd level for Parquet pages.
    #[arg(long, default_value_t = kreq_schemas::writer::DEFAULT_ZSTD_LEVEL)]
    zstd_level: i32,
    /// Trace clock the input was recorded with (mono, local, boot, ...); text does not say.
    #[arg(long)]
    clock: Option<String>,
    /// Kernel release of the traced machine, stored in the metadata.
    #[arg(long)]
    kernel: Option<String>,
    /// Host name of the traced machine, stored in the metadata and, with --warehouse, the
    /// host partition (default: the host the recording names).
    #[arg(long)]
    host: Option<String>,
    /// Replace an existing dataset at the output path.
    #[arg(long)]
    force: bool,
    /// Print nothing but errors.
    #[arg(short, long)]
    quiet: bool,
    /// Print the summary as one JSON object on stdout instead of text on stderr.
    #[arg(long)]
    json: bool,
}

struct Bar(ProgressBar);

impl Progress for Bar {
    fn advance(&self, bytes: u64) {
        self.0.inc(bytes);
    }
}

/// Files smaller than this get no progress bar.
const PROGRESS_MIN_BYTES: u64 = 32 << 20;

pub fn run(args: IngestArgs) -> Result<()> {
    if args.chunk_mib == 0 {
        bail!("--chunk-mib must be at least 1");
    }
    let staging = match &args.warehouse {
        Some(dir) => Some(stage(dir, &args.inputs)?),
        None => None,
    };
    let output = match (&staging, &args.output) {
        (Some((_, s)), _) => s.dir().to_owned(),
        (None, Some(o)) => o.clone(),
        (None, None) => bail!("give --output or --warehouse"),
    };
    let mut opts = IngestOptions::new(&output);
    if let Some(t) = args.threads {
        opts.threads = t.max(1);
    }
    opts.chunk_bytes = args.chunk_mib << 20;
    opts.strict = args.strict;
    opts.zstd_level = args.zstd_level;
    opts.trace_clock = args.clock.clone();
    opts.kernel = args.kernel.clone();
    opts.host = args.host.clone();
    opts.force = args.force || staging.is_some();

    let total: u64 = args
        .inputs
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    let show_bar =
        !args.quiet && !args.json && std::io::stderr().is_terminal() && total >= PROGRESS_MIN_BYTES;
    let bar = if show_bar {
        let b = ProgressBar::new(total);
        b.set_style(
            ProgressStyle::with_template("{spinner} {bytes} read ({bytes_per_sec}) {elapsed}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        b
    } else {
        ProgressBar::hidden()
    };
    let progress = Bar(bar);
    let started = Instant::now();
    let report = kreq_ingest::ingest(&args.inputs, &opts, &progress)
        .with_context(|| format!("ingesting into {}", output.display()))?;
    progress.0.finish_and_clear();
    let secs = started.elapsed().as_secs_f64().max(1e-9);
    let m = &report.manifest;
    let bytes: u64 = m.sources.iter().map(|s| s.bytes).sum();
    let malformed: u64 = m.sources.iter().map(|s| s.malformed).sum();
    let lost_reports: u64 = m.sources.iter().map(|s| s.lost_reports).sum();
    if args.json {
        let summary = serde_json::json!({
            "dataset": output.display().to_string(),
            "seconds": secs,
            "events": m.events,
            "lost_events": m.lost_events,
            "lost_reports": lost_reports,
            "malformed": malformed,
            "parquet_bytes": report.parquet_bytes,
            "trace_clock": m.trace_clock,
            "sorted": m.sorted,
            "parts_sorted_whole": report.parts_sorted_whole,
            "inputs": m.sources,
            "malformed_examples": report.malformed.iter().take(5).map(|(file, l)| serde_json::json!({
                "file": file, "line": l.line, "offset": l.offset, "reason": l.reason, "text": l.text,
            })).collect::<Vec<_>>(),
            "truncated": report.truncated.iter().map(|(file, at, cause)| serde_json::json!({
                "file": file, "at": at, "cause": cause,
            })).collect::<Vec<_>>(),
        });
        println!("{summary}");
    } else if !args.quiet {
        eprintln!(
            "ingested {} events from {} ({:.1} MB input) in {:.2}s: {:.0} events/s, {:.1} MB/s",
            m.events,
            m.sources.len().to_string()
                + if m.sources.len() == 1 {
                    " input"
                } else {
                    " inputs"
                },
            bytes as f64 / 1e6,
            secs,
            m.events as f64 / secs,
            bytes as f64 / 1e6 / secs,
        );
        eprintln!(
            "{} {} ({:.1} MB parquet, {:.2} bytes/event, clock {})",
            if staging.is_some() { "staged" } else { "wrote" },
            output.display(),
            report.parquet_bytes as f64 / 1e6,
            report.parquet_bytes as f64 / (m.events.max(1)) as f64,
            m.trace_clock,
        );
        eprintln!(
            "lost events: {} in {} report(s); malformed lines: {}",
            m.lost_events, lost_reports, malformed
        );
        for (file, line) in report.malformed.iter().take(5) {
            eprintln!(
                "  {file}:{}: byte {}: {}: {}",
                line.line, line.offset, line.reason, line.text
            );
        }
        if !m.sorted {
            eprintln!("note: input chunks overlap in time; each part file is sorted by ts_ns");
        }
        if report.parts_sorted_whole > 0 {
            eprintln!(
                "note: {} part(s) were too far out of time order to stream and were parsed twice",
                report.parts_sorted_whole
            );
        }
    }
    let mut written = output.display().to_string();
    if let Some((wh, staged)) = staging {
        let batch = staged.batch().to_owned();
        let (host, date) = (args.host.clone(), args.date.clone());
        let (to, done) = crate::warehouse_cmd::commit(&wh, staged, host, date, m, &args.inputs)?;
        written = format!(
            "{} (host={} date={})",
            wh.root().display(),
            to.host,
            to.date
        );
        if !args.quiet && !args.json {
            eprintln!(
                "committed batch {batch} to {written}: {} files added, {} replaced, {} kept",
                done.added, done.replaced, done.kept
            );
        }
    }
    if let Some((path, at, cause)) = report.truncated.first() {
        return Err(crate::truncated::TruncatedInput(format!(
            "{path}: the input ends early after {at} bytes of whole lines ({cause}); every \
             event before the cut is in {written} (its manifest says `truncated_at`)"
        ))
        .into());
    }
    Ok(())
}

/// The warehouse at `dir` and a staging dataset for the batch of `inputs`.
fn stage(dir: &Path, inputs: &[PathBuf]) -> Result<(Warehouse, Staging)> {
    if inputs.iter().any(|p| p.as_os_str() == "-") {
        bail!("a warehouse batch is named by its input files' contents: stdin (-) cannot be one");
    }
    let wh = Warehouse::create_or_open(dir)?;
    let batch = kreq_warehouse::batch_id(inputs)?;
    let staged = wh.stage(&batch)?;
    Ok((wh, staged))
}
