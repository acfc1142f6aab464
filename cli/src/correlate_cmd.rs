//! `kreq correlate` and `kreq eval`.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;
use kreq_correlate::dataset::{correlate, Options};
use kreq_correlate::eval;

/// Arguments of `kreq correlate`.
#[derive(Debug, Args)]
pub struct CorrelateArgs {
    /// Dataset directory (from `kreq ingest` or `kreq record`); results are added to it. A
    /// warehouse: each of its batches (one host's recording) is correlated on its own and
    /// committed again with its results.
    pub dataset: PathBuf,
    /// In a warehouse, only the batches of this date (YYYY-MM-DD).
    #[arg(long)]
    pub date: Option<String>,
    /// In a warehouse, only the batches of this host.
    #[arg(long)]
    pub host: Option<String>,
    /// Where requests enter (`ADDR:PORT`, `[V6]:PORT`, or `:PORT` for any address); repeat
    /// for several. Default: the server endpoints whose clients serve nothing in the trace.
    #[arg(long)]
    pub ingress: Vec<String>,
    /// Print nothing but errors.
    #[arg(short, long)]
    pub quiet: bool,
    /// Print the summary as one JSON object on stdout instead of text on stderr.
    #[arg(long)]
    pub json: bool,
    /// In a warehouse, correlate no batch: only compute the clock offsets between hosts from
    /// the correlated batches and record them (a nightly job's step after correlating each
    /// host on its own).
    #[arg(long, conflicts_with_all = ["date", "host", "ingress"])]
    pub offsets_only: bool,
}

/// The summary of a correlation run as JSON: what the text summary says, for scripts.
fn summary_json(s: &kreq_correlate::dataset::Summary, secs: f64) -> serde_json::Value {
    let st = &s.stats;
    let h = &s.digest.latency;
    let q = |p: f64| (h.count() > 0).then(|| h.quantile(p));
    serde_json::json!({
        "seconds": secs,
        "ingress": s.ingress,
        "ingress_auto": s.ingress_auto,
        "events": st.events,
        "labelled": st.labelled - s.late_labels,
        "requests": st.requests,
        "incomplete": s.incomplete,
        "spans": st.spans,
        "edges": st.edges,
        "unseen_bytes": st.unseen_bytes,
        "mixed_reads": st.mixed_reads,
        "unmatched_syscalls": st.unmatched_brackets,
        "late_hops": st.late_hops,
        "late_labels": s.late_labels,
        "handoffs": st.handoffs,
        "unresolved_stretches": st.unresolved_stretches,
        "unsettled_loops": st.unsettled_loops,
        "unsettled_links": st.unsettled_links,
        "resyncs": st.resyncs,
        "peak_state": {
            "threads": s.peak_state[0],
            "sockets": s.peak_state[1],
            "streams": s.peak_state[2],
            "open_requests": s.peak_state[3],
            "open_spans": s.peak_state[4],
        },
        "peak_rss_mib": peak_rss_mib(),
        "latency_ns": {
            "p50": q(0.5), "p90": q(0.9), "p99": q(0.99), "max": q(1.0), "count": h.count(),
        },
        "slowest": s.digest.slowest.iter()
            .map(|(d, id, spans)| serde_json::json!({"request_id": id, "duration_ns": d, "spans": spans}))
            .collect::<Vec<_>>(),
        "services": s.digest.services.iter()
            .map(|(name, t)| (name.clone(), serde_json::json!({
                "spans": t.spans, "total_ns": t.total_ns, "cpu_ns": t.cpu_ns,
                "runnable_ns": t.runnable_ns, "blocked_ns": t.blocked_ns,
            })))
            .collect::<serde_json::Map<_, _>>(),
    })
}

/// Runs `kreq correlate`.
pub fn run(args: CorrelateArgs) -> Result<()> {
    if kreq_schemas::warehouse::is_warehouse(&args.dataset) {
        return run_warehouse(args);
    }
    if args.date.is_some() || args.host.is_some() || args.offsets_only {
        bail!(
            "--date, --host and --offsets-only are for a warehouse; {} is a dataset",
            args.dataset.display()
        );
    }
    let t0 = Instant::now();
    let opts = Options {
        ingress: args.ingress,
        linger_ns: 0,
        first_id: 1,
    };
    let s = correlate(&args.dataset, &opts)?;
    let secs = t0.elapsed().as_secs_f64();
    if args.json {
        println!("{}", summary_json(&s, secs));
        return Ok(());
    }
    if args.quiet {
        return Ok(());
    }
    let how = if s.ingress_auto { "detected" } else { "given" };
    if s.ingress.is_empty() {
        eprintln!("ingress: none found; pass --ingress ADDR:PORT (no requests can start)");
    } else {
        eprintln!("ingress ({how}): {}", s.ingress.join(", "));
    }
    let st = s.stats;
    eprintln!(
        "correlated {} events in {secs:.2}s ({:.0} events/s): {} requests ({} incomplete), {} spans, {} edges; {} events labelled",
        st.events,
        st.events as f64 / secs.max(1e-9),
        st.requests,
        s.incomplete,
        st.spans,
        st.edges,
        st.labelled - s.late_labels,
    );
    eprintln!(
        "bytes read but never seen sent: {}; reads mixing two requests: {}; unmatched syscalls: {}; late hops: {}; late labels: {}",
        st.unseen_bytes, st.mixed_reads, st.unmatched_brackets, st.late_hops, s.late_labels
    );
    if st.handoffs > 0 || st.unresolved_stretches > 0 {
        eprintln!(
            "work handed to threads with no request: {} joined to a request (handoff or wakeup), {} answered none and left unattributed",
            st.handoffs, st.unresolved_stretches
        );
    }
    if st.unsettled_loops > 0 {
        eprintln!(
            "event loops whose requests agree on no number of calls, or whose due steps run late: {} ({} of their links' confidence capped at 0.2: which request a step served is a guess there)",
            st.unsettled_loops, st.unsettled_links
        );
    }
    if st.resyncs > 0 {
        eprintln!(
            "lost events: started afresh {} time(s); requests overlapping a loss are marked incomplete",
            st.resyncs
        );
    }
    eprintln!(
        "peak state: {} threads, {} sockets, {} streams, {} open requests, {} open spans; peak RSS {} MiB",
        s.peak_state[0],
        s.peak_state[1],
        s.peak_state[2],
        s.peak_state[3],
        s.peak_state[4],
        peak_rss_mib().map_or("?".into(), |m| m.to_string())
    );
    print_digest(&s.digest);
    Ok(())
}

/// `kreq correlate WAREHOUSE`: every selected batch in turn, each independent of the others
/// (its own recording, its own id range), committed again with its spans, requests and
/// labelled events; then the clock offsets between hosts that call each other (the
/// `clock_offsets` view), for a nightly job's log.
fn run_warehouse(args: CorrelateArgs) -> Result<()> {
    let wh = kreq_warehouse::Warehouse::open(&args.dataset)?;
    let chosen = match args.offsets_only {
        true => Vec::new(),
        false => wh.batches_of(args.host.as_deref(), args.date.as_deref())?,
    };
    if chosen.is_empty() && !args.offsets_only {
        bail!("{}: no batch matches", args.dataset.display());
    }
    let mut out = Vec::new();
    for b in &chosen {
        let t0 = Instant::now();
        let staged = wh.checkout(b)?;
        let opts = Options {
            ingress: args.ingress.clone(),
            linger_ns: 0,
            first_id: staged.id_base().unwrap_or(1),
        };
        let s = correlate(staged.dir(), &opts).with_context(|| {
            format!(
                "correlating batch {} (host={} date={})",
                b.id, b.host, b.date
            )
        })?;
        let to = kreq_warehouse::Partition {
            host: b.host.clone(),
            date: b.date.clone(),
        };
        wh.commit(staged, &to, &crate::warehouse_cmd::pause_before_swap)?;
        let secs = t0.elapsed().as_secs_f64();
        if args.json {
            let mut v = summary_json(&s, secs);
            v["batch"] = b.id.clone().into();
            v["host"] = b.host.clone().into();
            v["date"] = b.date.clone().into();
            out.push(v);
        } else if !args.quiet {
            eprintln!(
                "host={} date={} batch {}: {} events, {} requests ({} incomplete), {} spans in {secs:.2}s",
                b.host, b.date, b.id, s.stats.events, s.stats.requests, s.incomplete, s.stats.spans
            );
        }
    }
    let offsets = clock_offsets(&args.dataset)?;
    wh.record_clock_offsets(&offsets)?;
    if args.json {
        println!(
            "{}",
            serde_json::json!({"batches": out, "clock_offsets": offsets})
        );
    } else if !args.quiet {
        for o in &offsets {
            eprintln!(
                "clock of {} minus {}: {} ± {} ns ({} calls between them)",
                o.server_host, o.client_host, o.offset_ns, o.uncertainty_ns, o.calls
            );
        }
    }
    Ok(())
}

/// The warehouse's `clock_offsets` view, one row per pair of hosts that call each other
/// (none when no call crosses hosts).
fn clock_offsets(w: &std::path::Path) -> Result<Vec<kreq_schemas::warehouse::ClockOffset>> {
    use datafusion::arrow::util::display::array_value_to_string;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let (ctx, _) = kreq_query::tables::open(w).await?;
        if !ctx.table_exist("clock_offsets")? {
            return Ok(Vec::new());
        }
        let batches = ctx
            .sql(
                "SELECT CAST(client_host AS STRING) AS client_host, \
                        CAST(server_host AS STRING) AS server_host, calls, offset_min_ns, \
                        offset_max_ns, offset_ns, uncertainty_ns \
                 FROM clock_offsets ORDER BY client_host, server_host",
            )
            .await?
            .collect()
            .await?;
        let mut out = Vec::new();
        for b in &batches {
            for row in 0..b.num_rows() {
                let s = |i: usize| array_value_to_string(b.column(i), row);
                let n = |i: usize| -> Result<i64> {
                    let v = s(i)?;
                    v.parse()
                        .with_context(|| format!("clock_offsets: {v:?} is not a number"))
                };
                out.push(kreq_schemas::warehouse::ClockOffset {
                    client_host: s(0)?,
                    server_host: s(1)?,
                    calls: n(2)?,
                    offset_min_ns: n(3)?,
                    offset_max_ns: n(4)?,
                    offset_ns: n(5)?,
                    uncertainty_ns: n(6)?,
                });
            }
        }
        Ok(out)
    })
}

/// Arguments of `kreq eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// A correlated dataset, or a correlated warehouse: its requests are scored across hosts,
    /// each call's callee spans under the caller's request on the caller's clock (the
    /// `stitched_spans` view).
    pub dataset: PathBuf,
    /// Ground truth, JSON lines (format: see `kreq_correlate::eval`).
    #[arg(long)]
    pub truth: PathBuf,
    /// Exit non-zero when fewer than this share of requests is exact (0 to 1).
    #[arg(long)]
    pub min_accuracy: Option<f64>,
    /// Print the score as JSON.
    #[arg(long)]
    pub json: bool,
    /// List every inexact request with segment truth and what failed, in numbers (the JSON
    /// output always has them under `misses`).
    #[arg(long)]
    pub misses: bool,
}

/// Runs `kreq eval`.
pub fn run_eval(args: EvalArgs) -> Result<()> {
    let truth = eval::read_truth(&args.truth)?;
    let s = if kreq_schemas::warehouse::is_warehouse(&args.dataset) {
        let stitched = Scratch::new("eval")?;
        stitched_dataset(&args.dataset, &stitched.0)?;
        eval::evaluate(&stitched.0, &truth)?
    } else {
        eval::evaluate(&args.dataset, &truth)?
    };
    if args.json {
        println!("{}", serde_json::to_string(&s)?);
    } else {
        println!(
            "sent {}, correlated {}, found {}, exact {} ({:.2}%)",
            s.sent,
            s.correlated,
            s.found,
            s.exact,
            s.accuracy * 100.0
        );
        if s.complete < s.found {
            println!(
                "marked complete (no lost events may overlap them): {}, of which exact {}",
                s.complete, s.complete_exact
            );
        }
        for (why, n) in &s.failures {
            println!("  {n:5}  {why}");
        }
        if args.misses {
            for m in &s.misses {
                println!("  {}: {}: {}", m.request_id, m.why, m.detail);
            }
        } else {
            for (id, why) in &s.examples {
                println!("  e.g. {id}: {why}");
            }
        }
        if !s.calibration.is_empty() {
            println!("calibration (links of found requests, by the confidence of their rule):");
            println!("  confidence   links   right   share  unchecked  rules");
            for c in &s.calibration {
                let share = if c.links == 0 {
                    "-".to_owned()
                } else {
                    format!("{:.3}", c.right as f64 / c.links as f64)
                };
                println!(
                    "  {:10.2} {:7} {:7} {:>7} {:10}  {}",
                    c.confidence,
                    c.links,
                    c.right,
                    share,
                    c.unchecked,
                    c.rules.join(", ")
                );
            }
        }
    }
    if let Some(min) = args.min_accuracy {
        if s.accuracy < min {
            bail!("accuracy {:.4} is below --min-accuracy {min}", s.accuracy);
        }
    }
    Ok(())
}

/// A scratch directory in the system's temporary directory, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(what: &str) -> Result<Scratch> {
        let dir = std::env::temp_dir().join(format!("kreq-{what}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).with_context(|| dir.display().to_string())?;
        Ok(Scratch(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Writes into `out` the dataset `kreq eval` scores for a warehouse: every span with its
/// caller's request id and times on the caller's clock (`stitched_spans`), the requests no
/// other host's call started, and the links, under those ids. Columns keep the types of
/// kreq's schemas, so the dataset reads as one host's.
fn stitched_dataset(w: &std::path::Path, out: &std::path::Path) -> Result<()> {
    use kreq_schemas::{edges, requests, spans};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let (ctx, _) = kreq_query::tables::open(w).await?;
        if !ctx.table_exist("stitched_spans")? {
            bail!(
                "{}: not correlated; run `kreq correlate` on it first",
                w.display()
            );
        }
        let select = |schema: datafusion::arrow::datatypes::SchemaRef, rename: &[(&str, &str)]| {
            schema
                .fields()
                .iter()
                .map(|f| {
                    let name = f.name().as_str();
                    let from = rename.iter().find(|r| r.0 == name).map_or(name, |r| r.1);
                    format!("arrow_cast({from}, '{}') AS \"{name}\"", f.data_type())
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        let started_elsewhere = "SELECT server_request_id FROM cross_host_calls";
        let tables = [
            (
                "spans",
                format!(
                    "SELECT {} FROM stitched_spans",
                    select(
                        spans::schema(),
                        &[
                            (spans::REQUEST_ID, "global_request_id"),
                            (spans::START_NS, "aligned_start_ns"),
                            (spans::END_NS, "aligned_end_ns"),
                        ],
                    )
                ),
            ),
            (
                "requests",
                format!(
                    "SELECT {} FROM requests WHERE request_id NOT IN ({started_elsewhere})",
                    select(requests::schema(), &[])
                ),
            ),
            (
                "edges",
                format!(
                    "SELECT {} FROM edges e LEFT JOIN cross_host_calls x \
                     ON e.request_id = x.server_request_id",
                    select(
                        edges::schema(),
                        &[(
                            edges::REQUEST_ID,
                            "COALESCE(x.client_request_id, e.request_id)"
                        )],
                    )
                ),
            ),
        ];
        for (table, query) in tables {
            let dir = out.join(table);
            std::fs::create_dir_all(&dir)?;
            let file = dir.join("part-0.parquet");
            ctx.sql(&format!(
                "COPY ({query}) TO '{}' STORED AS PARQUET",
                file.display()
            ))
            .await?
            .collect()
            .await
            .with_context(|| format!("stitching {table} of {}", w.display()))?;
        }
        Ok(())
    })
}

/// Peak resident memory of this process (VmHWM), in MiB.
pub fn peak_rss_mib() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024)
}

fn ms(ns: i64) -> String {
    format!("{:.3} ms", ns as f64 / 1e6)
}

fn print_digest(d: &kreq_correlate::summary::Digest) {
    let h = &d.latency;
    if h.count() == 0 {
        return;
    }
    println!(
        "request latency: p50 {}  p90 {}  p99 {}  max {}  ({} requests)",
        ms(h.quantile(0.5) as i64),
        ms(h.quantile(0.9) as i64),
        ms(h.quantile(0.99) as i64),
        ms(h.quantile(1.0) as i64),
        h.count()
    );
    println!("slowest requests (request_id, duration, spans):");
    for (dur, id, spans) in &d.slowest {
        println!("  {id:>10}  {:>12}  {spans}", ms(*dur));
    }
    println!("time in server spans per service (on-CPU / runnable / blocked):");
    for (name, t) in &d.services {
        let pct = |v: i64| 100.0 * v as f64 / t.total_ns.max(1) as f64;
        println!(
            "  {name:<16} {:>6} spans  {:>12} total  {:5.1}% cpu  {:5.1}% runnable  {:5.1}% blocked",
            t.spans,
            ms(t.total_ns),
            pct(t.cpu_ns),
            pct(t.runnable_ns),
            pct(t.blocked_ns)
        );
    }
}
