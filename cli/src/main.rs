//! The `kreq` command line.

mod cluster_cmd;
mod correlate_cmd;
mod export_cmd;
mod ingest_cmd;
mod outfile;
mod record_cmd;
mod report_cmd;
mod sql_cmd;
mod truncated;
mod warehouse_cmd;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use truncated::TruncatedInput;

/// mimalloc keeps freed chunk buffers for reuse; with the system allocator every 64 MiB chunk
/// came back as fresh zeroed pages (a sixth of ingest time was page faults).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Kernel-level request tracing over ftrace.
#[derive(Debug, Parser)]
#[command(name = "kreq", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Convert ftrace text (trace, trace_pipe, trace-cmd report) into a Parquet dataset.
    Ingest(ingest_cmd::IngestArgs),
    /// Record kernel events live from a private tracefs instance (root).
    Record(record_cmd::RecordArgs),
    /// Label every event with its request and derive spans, requests and edges.
    Correlate(correlate_cmd::CorrelateArgs),
    /// Score a correlated dataset against ground truth.
    Eval(correlate_cmd::EvalArgs),
    /// SQL over events, spans, requests, edges and lost events (interactive without a query).
    Sql(sql_cmd::SqlArgs),
    /// The standard analyses: latency, slowest requests, breakdown, hotspots, lost events
    /// (text, or a self-contained HTML page with --html).
    Report(report_cmd::ReportArgs),
    /// Export requests as Perfetto (Chrome trace JSON) or OTLP JSON.
    Export(export_cmd::ExportArgs),
    /// Run a Ballista scheduler or executor for `kreq sql --cluster` (cargo feature `cluster`).
    Cluster(cluster_cmd::ClusterArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    quiet_on_broken_pipe();
    let result = match cli.command {
        Command::Ingest(args) => ingest_cmd::run(args),
        Command::Record(args) => record_cmd::run(args),
        Command::Correlate(args) => correlate_cmd::run(args),
        Command::Eval(args) => correlate_cmd::run_eval(args),
        Command::Sql(args) => sql_cmd::run(args),
        Command::Report(args) => report_cmd::run(args),
        Command::Export(args) => export_cmd::run(args),
        Command::Cluster(args) => cluster_cmd::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if is_broken_pipe(&e) {
                return ExitCode::SUCCESS;
            }
            if let Some(t) = e.downcast_ref::<TruncatedInput>() {
                eprintln!("kreq: warning: {}", t.0);
                return ExitCode::from(TruncatedInput::EXIT);
            }
            eprintln!("kreq: error: {}", message(&e));
            ExitCode::FAILURE
        }
    }
}

/// `kreq eval ... | head -1`: a reader that stops early ends kreq quietly with success, as a
/// broken pipe returned as an error does (below), instead of `println!` panicking. Rust ignores
/// SIGPIPE and the workspace forbids the `unsafe` that restoring it takes, so the panic that
/// std raises for a failed print to stdout is caught here.
fn quiet_on_broken_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let p = info.payload();
        let msg = p
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| p.downcast_ref::<&str>().copied())
            .unwrap_or("");
        if msg.starts_with("failed printing to stdout") && msg.contains("Broken pipe") {
            std::process::exit(0);
        }
        default(info);
    }));
}

/// The error and its causes, each cause once: DataFusion's messages already include theirs.
fn message(e: &anyhow::Error) -> String {
    let mut msg = String::new();
    for cause in e.chain() {
        let c = cause.to_string();
        // A cause is often its parent's text again, whole or behind its own prefix
        // ("sql parser error: ..." under DataFusion's "SQL error: ParserError(...)").
        let core = c.split_once(": ").map_or(c.as_str(), |(_, rest)| rest);
        if !msg.contains(&c) && !msg.contains(core) {
            if !msg.is_empty() {
                msg.push_str(": ");
            }
            msg.push_str(&c);
        }
    }
    // DataFusion shows a SQL syntax error in its debug form.
    if let Some(inner) = msg
        .strip_prefix("SQL error: ParserError(\"")
        .and_then(|m| m.strip_suffix("\")"))
    {
        return format!("SQL syntax error: {}", inner.replace("\\\"", "\""));
    }
    msg
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    // arrow's CSV writer keeps only the text of the io::Error (`Csv error: Broken pipe (os
    // error 32)`), so the text counts too.
    let epipe = std::io::Error::from_raw_os_error(32).to_string();
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            || c.to_string().ends_with(&epipe)
    })
}
