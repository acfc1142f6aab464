//! `kreq record`.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use kreq_record::{instance, profile};

/// Arguments of `kreq record`.
#[derive(Debug, Args)]
pub struct RecordArgs {
    /// Dataset directory to write.
    #[arg(short, long, required_unless_present_any = ["cleanup", "warehouse"], conflicts_with = "warehouse")]
    output: Option<PathBuf>,
    /// Append the recording to a warehouse instead (made when missing), as one batch in
    /// `TABLE/host=H/date=D/`, visible once the recording ends.
    #[arg(long, value_name = "DIR")]
    warehouse: Option<PathBuf>,
    /// Host partition of a warehouse batch (default: this machine's host name).
    #[arg(long, requires = "warehouse")]
    host: Option<String>,
    /// Date partition (YYYY-MM-DD) of a warehouse batch (default: the UTC date the recording
    /// started).
    #[arg(long, requires = "warehouse")]
    date: Option<String>,
    /// Tests only: add this to every recorded time (two recordings of one machine standing for
    /// two hosts whose clocks differ).
    #[arg(long, hide = true, default_value_t = 0, allow_hyphen_values = true)]
    test_shift_ns: i64,
    /// Extra event to record, as GROUP:NAME or GROUP:* (repeatable), e.g. sched:sched_migrate_task.
    #[arg(short, long = "event")]
    events: Vec<String>,
    /// tracefs filter for an event, as GROUP:NAME=EXPR (repeatable), e.g. 'block:block_rq_issue=bytes > 4096'.
    #[arg(long = "filter")]
    filters: Vec<String>,
    /// Record only the --event list, not the default correlation profile.
    #[arg(long)]
    no_default_events: bool,
    /// Stop after this many seconds (default: until Ctrl-C or SIGTERM).
    #[arg(short, long)]
    duration: Option<f64>,
    /// Trace clock: mono (default, comparable with CLOCK_MONOTONIC), boot, global, local, ...
    #[arg(long, default_value = "mono")]
    clock: String,
    /// Per-CPU ring buffer size in KiB.
    #[arg(long, default_value_t = 8192)]
    buffer_kb: u32,
    /// Only record these processes and their children (repeatable).
    #[arg(short, long = "pid")]
    pids: Vec<i32>,
    /// Only record the processes of this cgroup directory and their children (repeatable),
    /// e.g. /sys/fs/cgroup/system.slice/nginx.service.
    #[arg(long = "cgroup")]
    cgroups: Vec<PathBuf>,
    /// Start a new part file after this many MiB of raw trace data.
    #[arg(long, default_value_t = 64)]
    rotate_mib: usize,
    /// Start a new part file at least this often (seconds).
    #[arg(long, default_value_t = 10.0)]
    rotate_secs: f64,
    /// Wake the per-CPU readers when their buffer is this full, in percent (tracefs buffer_percent).
    #[arg(long, default_value_t = 25, value_parser = clap::value_parser!(u8).range(0..=100))]
    wake_percent: u8,
    /// Read pages that stay below --wake-percent at least this often (milliseconds).
    #[arg(long, default_value_t = 1000)]
    max_wait_ms: u64,
    /// Replace an existing dataset at the output path.
    #[arg(long)]
    force: bool,
    /// Remove kreq tracefs instances left by crashed runs, then exit.
    #[arg(long)]
    cleanup: bool,
    /// Print nothing but errors.
    #[arg(short, long)]
    quiet: bool,
    /// Print the summary as one JSON object on stdout at the end (the "recording ..." line
    /// that says tracing has started still goes to stderr).
    #[arg(long)]
    json: bool,
}

pub fn run(args: RecordArgs) -> Result<()> {
    if args.cleanup {
        let root = instance::tracefs_root()?;
        let removed = instance::cleanup(&root, false)?;
        if !args.quiet {
            eprintln!(
                "removed {} stale instance(s){}",
                removed.len(),
                list(&removed)
            );
        }
        return Ok(());
    }
    let staging = match &args.warehouse {
        Some(dir) => {
            let wh = kreq_warehouse::Warehouse::create_or_open(dir)?;
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            let staged = wh.stage(&format!("rec-{now}-{}", std::process::id()))?;
            Some((wh, staged))
        }
        None => None,
    };
    let output = match (&staging, &args.output) {
        (Some((_, s)), _) => s.dir().to_owned(),
        (None, Some(o)) => o.clone(),
        (None, None) => bail!("--output or --warehouse is required"),
    };
    let mut opts = kreq_record::RecordOptions::new(&output);
    if args.no_default_events {
        opts.events.clear();
    }
    for e in &args.events {
        let spec = profile::parse_event(e)?;
        if !opts
            .events
            .iter()
            .any(|x| x.group == spec.group && x.name == spec.name)
        {
            opts.events.push(spec);
        }
    }
    for f in &args.filters {
        let (ev, expr) = f
            .split_once('=')
            .with_context(|| format!("--filter {f:?} is not GROUP:NAME=EXPR"))?;
        let spec = profile::parse_event(ev)?;
        match opts
            .events
            .iter_mut()
            .find(|x| x.group == spec.group && x.name == spec.name)
        {
            Some(x) => x.filter = Some(expr.to_owned()),
            None => opts.events.push(profile::EventSpec {
                filter: Some(expr.to_owned()),
                ..spec
            }),
        }
    }
    if opts.events.is_empty() {
        bail!("no events to record (give --event or drop --no-default-events)");
    }
    opts.clock = args.clock.clone();
    opts.buffer_kb = args.buffer_kb;
    opts.duration = args.duration.map(Duration::from_secs_f64);
    opts.pids = args.pids.clone();
    opts.cgroups = args.cgroups.clone();
    opts.rotate_bytes = args.rotate_mib.max(1) << 20;
    opts.rotate_every = Duration::from_secs_f64(args.rotate_secs.max(0.1));
    opts.wake_percent = args.wake_percent;
    opts.max_wait = Duration::from_millis(args.max_wait_ms.max(1));
    opts.force = args.force || staging.is_some();
    opts.test_shift_ns = args.test_shift_ns;

    let stop = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGINT, stop.clone())?;
    signal_hook::flag::register(signal_hook::consts::SIGTERM, stop.clone())?;
    let until = args
        .duration
        .map_or("Ctrl-C".to_owned(), |d| format!("{d}s"));
    let started = Started {
        quiet: args.quiet,
        line: format!(
            "recording {} events into {} until {until}",
            opts.events.len(),
            output.display()
        ),
    };
    let report = kreq_record::record(&opts, &stop, &started)
        .with_context(|| format!("recording into {}", output.display()))?;
    if args.json {
        let m = &report.manifest;
        let summary = serde_json::json!({
            "dataset": output.display().to_string(),
            "events": m.events,
            "raw_bytes": m.sources.first().map_or(0, |s| s.bytes),
            "parquet_bytes": report.parquet_bytes,
            "parts": m.sources.first().map_or(0, |s| s.parts.len()),
            "instance": report.instance,
            "trace_clock": m.trace_clock,
            "readers": {
                "wakeups": report.readers.wakeups,
                "pages": report.readers.pages,
                "spliced": report.readers.spliced,
            },
            "own_events_left_out": report.own_events,
            "lost_events": report.lost.iter().filter_map(|l| l.count).sum::<u64>(),
            "lost_reports_without_count": report.lost.iter().filter(|l| l.count.is_none()).count(),
        });
        println!("{summary}");
    } else if !args.quiet {
        let m = &report.manifest;
        let lost: u64 = report.lost.iter().filter_map(|l| l.count).sum();
        let unknown = report.lost.iter().filter(|l| l.count.is_none()).count();
        eprintln!(
            "recorded {} events ({:.1} MB raw, {:.1} MB parquet, {} part file(s)) via instance {} (removed)",
            m.events,
            m.sources.first().map_or(0, |s| s.bytes) as f64 / 1e6,
            report.parquet_bytes as f64 / 1e6,
            m.sources.first().map_or(0, |s| s.parts.len()),
            report.instance,
        );
        eprintln!(
            "readers: {} wakeups, {} pages ({} spliced; woken at {}% full or every {} ms); {} events of kreq's own threads left out",
            report.readers.wakeups,
            report.readers.pages,
            report.readers.spliced,
            args.wake_percent,
            args.max_wait_ms,
            report.own_events
        );
        eprintln!(
            "lost events: {lost}{}",
            if unknown > 0 {
                format!(" (+{unknown} page(s) with an unknown count)")
            } else {
                String::new()
            }
        );
    }
    if let Some((wh, staged)) = staging {
        let batch = staged.batch().to_owned();
        let (host, date) = (args.host.clone(), args.date.clone());
        let (to, done) =
            crate::warehouse_cmd::commit(&wh, staged, host, date, &report.manifest, &[])?;
        if !args.quiet && !args.json {
            eprintln!(
                "committed batch {batch} to {} (host={} date={}): {} files",
                wh.root().display(),
                to.host,
                to.date,
                done.added
            );
        }
    }
    Ok(())
}

/// Prints the "recording ..." line once tracing has really started (scripts wait for it).
struct Started {
    quiet: bool,
    line: String,
}

impl kreq_record::RecordObserver for Started {
    fn started(&self, name: &str) {
        if !self.quiet {
            eprintln!("{} (instance {name})", self.line);
        }
    }
}

fn list(v: &[String]) -> String {
    if v.is_empty() {
        String::new()
    } else {
        format!(": {}", v.join(", "))
    }
}
